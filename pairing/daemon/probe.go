package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
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

// Refusals of a reverse probe request.
var (
	errProbeStranger = errors.New("reverse probes only for devices in our peer table")
	errProbeOffLink  = errors.New("reverse probes only for requests from our own link")
	errProbeRate     = errors.New("too many reverse probe requests; try later")
)

// probes does reverse probes for peers (serve) and asks peers for them
// (ask): the proof that another host reaches an address of ours.
type probes struct {
	id    *pairing.Identity
	nbrs  *discovery.Neighbours
	links *discovery.Links

	mu        sync.Mutex
	perSource limit.PerSource
	total     *rate.Limiter
}

func newProbes(id *pairing.Identity, nbrs *discovery.Neighbours, links *discovery.Links) *probes {
	return &probes{id: id, nbrs: nbrs, links: links,
		perSource: limit.PerSource{Rate: probesPerSource, Burst: probeBurst, Max: probeSources},
		total:     rate.NewLimiter(probesTotal, 8)}
}

// serve dials the targets of by's request on by's announced port: only
// for a device in the peer table, from our link, to addresses it
// announced on the link the request came in on, within the rate limits.
func (p *probes) serve(ctx context.Context, req *pairing.ProbeRequest, by ident.Fingerprint, local, remote netip.Addr) (*pairing.ProbeResponse, error) {
	at := p.nbrs.Lookup(by)
	if len(at) == 0 {
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
	port := at[0].Port()
	resp := &pairing.ProbeResponse{Results: make([]discovery.ProbeResult, len(req.Targets))}
	var wg sync.WaitGroup
	for i, t := range req.Targets {
		a := t.Addr.Unmap()
		if a.Is6() && a.IsLinkLocalUnicast() {
			a = a.WithZone(link) // the link the request came in on
		}
		announced := slices.ContainsFunc(at, func(x netip.AddrPort) bool { return x.Addr().WithZone("") == a.WithZone("") })
		if !announced || p.links.LinkOf(a) != link || p.links.IsOwn(a) {
			resp.Results[i] = discovery.ProbeResult{Addr: t.Addr, Result: discovery.ProbeDenied, Error: "only the caller's announced addresses on the link the request came from"}
			continue
		}
		wg.Go(func() {
			r := discovery.DialConfirm(ctx, netip.AddrPortFrom(a, port), t.Nonce)
			r.Addr = t.Addr
			resp.Results[i] = r
		})
	}
	wg.Wait()
	return resp, nil
}

// ask asks a peer on our link, the most recently seen first, to dial
// targets.
func (p *probes) ask(ctx context.Context, targets []discovery.ProbeTarget) (string, []discovery.ProbeResult, error) {
	peers := slices.DeleteFunc(p.nbrs.Peers(), func(x discovery.Peer) bool {
		return x.Port == 0 || len(x.Addresses) == 0 || !p.links.OnLink(x.Addresses[0])
	})
	slices.SortFunc(peers, func(x, y discovery.Peer) int { return y.LastSeen.Compare(x.LastSeen) })
	if len(peers) == 0 {
		return "", nil, discovery.ErrNoProber
	}
	var errs []error
	for _, x := range peers[:min(len(peers), probeAsk)] {
		res, err := pairing.RequestProbe(ctx, p.id, netip.AddrPortFrom(x.Addresses[0], x.Port), x.Fingerprint, targets)
		if err == nil {
			return x.ID, res, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", cmp.Or(x.Name, x.ID), err))
	}
	return "", nil, errors.Join(errs...)
}
