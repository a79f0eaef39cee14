package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/limit"
	"github.com/lanpairing/pairing/pairing"
)

// Bounds of the reverse probes this daemon does for others.
const (
	// probesPerSource: one request a second per source (IPv6 by /64),
	// a burst of 4 (a device asks at most every 3 s, and at start).
	probesPerSource = rate.Limit(1)
	probeBurst      = 4
	// probesTotal bounds the requests of all sources together.
	probesTotal = rate.Limit(4)
	// probeSources caps the sources the limiter remembers.
	probeSources = 256
	// probeAsk is how many peers a round tries before giving up.
	probeAsk = 2
)

// maxVerified caps the devices whose proven addresses we remember.
const maxVerified = 128

// Refusals of a reverse probe request.
var (
	errProbeStranger = errors.New("reverse probes only for devices in our peer table or paired")
	errProbeOffLink  = errors.New("reverse probes only for requests from our own link")
	errProbeRate     = errors.New("too many reverse probe requests; try later")
)

// probes does reverse probes for peers (serve) and asks peers for them
// (ask): the proof that another host reaches an address of ours.
type probes struct {
	id    *pairing.Identity
	nbrs  peerTable
	links *discovery.Links
	store *pairing.Store

	mu        sync.Mutex
	perSource limit.PerSource
	total     *rate.Limiter
	// verified are addresses where a device showed its key (a pinned
	// TLS exchange that succeeded), by device; at most maxVerified.
	verified map[ident.Fingerprint]verifiedAt
	// firstSeen is when a device was first a candidate, at most
	// maxVerified: the devices known longest are asked first.
	firstSeen map[ident.Fingerprint]time.Time
}

// verifiedAt is where and when a device last showed its key.
type verifiedAt struct {
	addrs []netip.Addr
	at    time.Time
}

// peerTable is what probes need of the neighbours: the devices heard
// now, and where one of them is (discovery.Neighbours).
type peerTable interface {
	Peers() []discovery.Peer
	Lookup(ident.Fingerprint) []netip.AddrPort
}

func newProbes(id *pairing.Identity, nbrs peerTable, links *discovery.Links, store *pairing.Store) *probes {
	return &probes{id: id, nbrs: nbrs, links: links, store: store,
		perSource: limit.PerSource{Rate: probesPerSource, Burst: probeBurst, Max: probeSources},
		total:     rate.NewLimiter(probesTotal, 8), verified: map[ident.Fingerprint]verifiedAt{}, firstSeen: map[ident.Fingerprint]time.Time{}}
}

// verify records that fp showed its key at a (a TLS exchange pinned to
// it, either way).
func (p *probes) verify(fp ident.Fingerprint, a netip.Addr) {
	a = a.Unmap()
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.verified[fp]
	if !ok && len(p.verified) >= maxVerified {
		var oldest ident.Fingerprint
		var at time.Time
		for k, x := range p.verified {
			if at.IsZero() || x.at.Before(at) {
				oldest, at = k, x.at
			}
		}
		delete(p.verified, oldest)
	}
	// A new slice: candidates reads copies of the map without the lock.
	v.addrs = append(slices.DeleteFunc(slices.Clone(v.addrs), func(x netip.Addr) bool { return x == a }), a)
	if len(v.addrs) > 4 {
		v.addrs = v.addrs[len(v.addrs)-4:]
	}
	v.at = time.Now()
	p.verified[fp] = v
}

// serve dials for the device by the one address it showed is its own:
// the one its request came from, with its key (a TCP handshake cannot
// come from an address it does not hold). Only on our link, on the
// device's listener port (its beacon's, or the paired store's), within
// the rate limits. Results say only whether our dial reached its
// listener: nothing about other hosts.
func (p *probes) serve(ctx context.Context, req *pairing.ProbeRequest, by ident.Fingerprint, local, remote netip.Addr) (*pairing.ProbeResponse, error) {
	var port uint16
	if at := p.nbrs.Lookup(by); len(at) > 0 {
		port = at[0].Port()
	} else if pp, ok := p.store.Get(by); ok {
		port = pp.Port
	}
	if port == 0 {
		return nil, errProbeStranger
	}
	link := p.links.LinkOf(local)
	if link == "" || p.links.LinkOf(remote) != link {
		return nil, errProbeOffLink
	}
	p.mu.Lock()
	ok := p.perSource.Allow(remote, time.Now()) && p.total.Allow()
	p.mu.Unlock()
	if !ok {
		return nil, errProbeRate
	}
	p.verify(by, remote)
	resp := &pairing.ProbeResponse{Results: make([]discovery.ProbeResult, len(req.Targets))}
	var wg sync.WaitGroup
	dialled := false // one dial per request
	for i, t := range req.Targets {
		a := t.Addr.Unmap()
		if a.Is6() && a.IsLinkLocalUnicast() {
			a = a.WithZone(link) // the link the request came in on
		}
		if dialled || a.WithZone("") != remote.Unmap().WithZone("") || p.links.IsOwn(a) {
			resp.Results[i] = discovery.ProbeResult{Addr: t.Addr, Result: discovery.ProbeDenied, Error: "only the address the request came from, once"}
			continue
		}
		dialled = true
		wg.Go(func() {
			r := discovery.DialConfirm(ctx, netip.AddrPortFrom(a, port), t.Nonce)
			r.Addr = t.Addr
			resp.Results[i] = r
		})
	}
	wg.Wait()
	return resp, nil
}

// proberAt is a device we may ask, at addresses that share a link with
// the target.
type proberAt struct {
	fp    ident.Fingerprint
	id    string
	name  string
	trust string
	addrs []netip.AddrPort
	seen  time.Time
}

// candidates are the identified devices that share target's link, in
// the order to ask them: paired devices first, then those that showed
// their key before, then the others (whose key the pinned dial checks
// before anything is sent); the device known longest first within each,
// and one device per address (a stranger's many keys on one host are
// one opinion). Each is dialled at the addresses it showed its key at,
// then at those it announced or we stored, and only where they share
// target's link.
func (p *probes) candidates(target netip.Addr, skip []string) []proberAt {
	byFP := map[ident.Fingerprint]*proberAt{}
	add := func(fp ident.Fingerprint, name string, port uint16, addrs ...netip.Addr) {
		if fp == p.id.Fingerprint || port == 0 {
			return
		}
		c := byFP[fp]
		if c == nil {
			c = &proberAt{fp: fp, id: fp.ID(), name: name, trust: discovery.TrustVerified}
			if _, ok := p.store.Get(fp); ok {
				c.trust = discovery.TrustPaired
			}
			byFP[fp] = c
		}
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a.Unmap(), port)
			if p.links.Shares(target, ap.Addr()) && !slices.Contains(c.addrs, ap) {
				c.addrs = append(c.addrs, ap)
			}
		}
	}
	p.mu.Lock()
	verified := maps.Clone(p.verified)
	p.mu.Unlock()
	peers := p.nbrs.Peers()
	portOf := func(fp ident.Fingerprint) uint16 {
		for _, x := range peers {
			if x.Fingerprint == fp {
				return x.Port
			}
		}
		pp, _ := p.store.Get(fp)
		return pp.Port
	}
	for fp, v := range verified {
		add(fp, "", portOf(fp), v.addrs...)
	}
	for _, pp := range p.store.List() {
		add(pp.Fingerprint, pp.Name, cmp.Or(portOf(pp.Fingerprint), pp.Port), pp.Addresses...)
	}
	for _, x := range peers {
		add(x.Fingerprint, x.Name, x.Port, x.Addresses...)
	}
	var out []proberAt
	p.mu.Lock()
	now := time.Now()
	for fp, c := range byFP {
		if len(c.addrs) == 0 {
			continue
		}
		if _, ok := p.firstSeen[fp]; !ok {
			if len(p.firstSeen) >= maxVerified {
				clear(p.firstSeen) // rare: a flood of keys; start over
			}
			p.firstSeen[fp] = now
		}
		c.seen = p.firstSeen[fp]
		out = append(out, *c)
	}
	p.mu.Unlock()
	rank := func(c proberAt) int {
		switch {
		case c.trust == discovery.TrustPaired:
			return 0
		case len(verified[c.fp].addrs) > 0:
			return 1
		}
		return 2
	}
	slices.SortFunc(out, func(x, y proberAt) int {
		return cmp.Or(rank(x)-rank(y), x.seen.Compare(y.seen), strings.Compare(x.id, y.id))
	})
	// One opinion per address; the skipped ones' addresses are taken.
	var used []netip.Addr
	kept := out[:0]
	for _, c := range out {
		dup := slices.ContainsFunc(c.addrs, func(a netip.AddrPort) bool { return slices.Contains(used, a.Addr()) })
		for _, a := range c.addrs {
			used = append(used, a.Addr())
		}
		if !dup && !slices.Contains(skip, c.id) {
			kept = append(kept, c)
		}
	}
	return kept
}

// ask has an identified device on target's link dial target, asking it
// from target itself; it tries at most probeAsk devices.
func (p *probes) ask(ctx context.Context, target discovery.ProbeTarget, skip []string) (discovery.Prober, discovery.ProbeResult, error) {
	cands := p.candidates(target.Addr, skip)
	if len(cands) == 0 {
		return discovery.Prober{}, discovery.ProbeResult{}, discovery.ErrNoProber
	}
	var errs []error
	for _, c := range cands[:min(len(cands), probeAsk)] {
		for _, at := range c.addrs[:min(len(c.addrs), 2)] {
			res, err := pairing.RequestProbe(ctx, p.id, target.Addr, at, c.fp, []discovery.ProbeTarget{target})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s at %s: %w", cmp.Or(c.name, c.id), at, err))
				continue
			}
			p.verify(c.fp, at.Addr())
			for _, r := range res {
				if r.Addr.WithZone("") == target.Addr.WithZone("") {
					return discovery.Prober{ID: c.id, Trust: c.trust}, r, nil
				}
			}
			errs = append(errs, fmt.Errorf("%s: no result for %s", cmp.Or(c.name, c.id), target.Addr))
		}
	}
	return discovery.Prober{}, discovery.ProbeResult{}, errors.Join(errs...)
}
