package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

// Peer is a device seen on the LAN.
type Peer struct {
	ID          string            `json:"id"`
	Fingerprint ident.Fingerprint `json:"fingerprint"`
	Name        string            `json:"name"`
	Addresses   []netip.Addr      `json:"addresses"`
	Port        uint16            `json:"port"`
	// SeenAs is the address the peer saw us at (from a reply), if any.
	SeenAs netip.Addr `json:"seen_as,omitzero"`
	// Source is where the peer was first seen (beacon or mdns); Sources
	// lists every source that has seen it.
	Source     string    `json:"source"`
	Sources    []string  `json:"sources"`
	WindowOpen bool      `json:"window_open"`
	LastSeen   time.Time `json:"last_seen"`
	// Heard is how the peer was heard: when, in a discover, and by which
	// ways its mDNS answers came (fields at the top level in JSON).
	Heard
	instance uint64
}

// merge folds one beacon event into p.
func (p *Peer) merge(ev beacon.Event) {
	pk := ev.Packet
	p.Name, p.Port, p.WindowOpen, p.LastSeen = pk.Name, pk.Port, pk.WindowOpen, ev.At
	// Replies come per family; keep the most useful seen-as address.
	if pk.SeenAs.IsValid() && (!p.SeenAs.IsValid() || addrRank(pk.SeenAs) <= addrRank(p.SeenAs)) {
		p.SeenAs = pk.SeenAs
	}
	// Source address first: it is proven to reach us from the peer. At
	// most maxPeerAddrs are kept: the ones seen first stay. A link-local
	// address is kept only as the source: the packet lists the peer's
	// link-locals of all its links, and which one is of the link the
	// packet came by, only the source says (one of another link, zoned
	// to this one, was dialled and met silence, which diag took for a
	// firewall).
	src := ev.From.Addr()
	for i, a := range append([]netip.Addr{src}, pk.Addrs...) {
		if a.Is6() && a.IsLinkLocalUnicast() {
			if i > 0 && a.WithZone("") != src.WithZone("") {
				continue
			}
			if a.Zone() == "" && ev.Interface != "" {
				a = a.WithZone(ev.Interface)
			}
		}
		if len(p.Addresses) < maxPeerAddrs && !slices.ContainsFunc(p.Addresses, func(x netip.Addr) bool { return x.WithZone("") == a.WithZone("") }) {
			p.Addresses = append(p.Addresses, a)
		}
	}
}

// addrRank orders addresses by use to another device: IPv4, then global
// or ULA IPv6, then link-local (which needs a zone).
func addrRank(a netip.Addr) int {
	switch {
	case a.IsLinkLocalUnicast():
		return 2
	case a.Is6():
		return 1
	}
	return 0
}

// Table is the peer table: devices keyed by fingerprint, expired after TTL
// without news, removed at once on goodbye.
type Table struct {
	TTL    time.Duration
	Logger *slog.Logger
	Now    func() time.Time
	// Self is this device's fingerprint: its own packets (e.g. the query
	// of its own address acquisition) never make it a peer.
	Self ident.Fingerprint

	// Max caps the peers (0: DefaultMaxPeers); when full, a new device
	// takes the place of the unpaired peer seen longest ago.
	Max int
	// Paired reports whether a device is paired: paired peers are never
	// evicted for a new one.
	Paired func(ident.Fingerprint) bool

	mu      sync.Mutex
	peers   map[ident.Fingerprint]*Peer
	arrival *rate.Limiter // new peers: a flood of made-up devices is refused
	refused uint64        // new peers refused (rate or a table of paired peers)
	logged  time.Time     // when the last "table full" line was logged
	// gone are the instances (daemon runs) that said goodbye: a beacon of
	// theirs that arrives later (sent just before, read on the other
	// family's socket) must not bring the device back.
	gone map[goneKey]time.Time
}

// goneKey is one run of one device.
type goneKey struct {
	fp       ident.Fingerprint
	instance uint64
}

const (
	// DefaultMaxPeers is far more devices than a LAN shows, far fewer than
	// a flood of made-up ones.
	DefaultMaxPeers = 256
	// maxPeerAddrs caps the addresses kept per peer (a device has a few;
	// spoofed sources have many).
	maxPeerAddrs = 16
	// newPeerRate and newPeerBurst bound how fast unknown devices join the
	// table (and log "peer found"): a LAN waking up fits the burst.
	newPeerRate  = rate.Limit(5)
	newPeerBurst = 64
	// goneFor and maxGone: a goodbye is remembered this long (late
	// packets come within milliseconds; a restart has a new instance),
	// for this many instances.
	goneFor = 10 * time.Second
	maxGone = 64
)

// Sources of peer information.
const (
	SourceBeacon = "beacon"
	SourceMDNS   = "mdns"
)

// Observe folds a beacon event into the table; it reports whether the
// peer is in the table (false: refused, left, or not a peer), and whether
// it is new there.
func (t *Table) Observe(ev beacon.Event) (in, fresh bool) { return t.ObserveFrom(SourceBeacon, ev) }

// ObserveFrom folds an event from source into the table. mDNS events have
// no instance nonce, so they never count as a restart.
func (t *Table) ObserveFrom(source string, ev beacon.Event) (in, fresh bool) {
	pk := ev.Packet
	if pk.Fingerprint.IsZero() || pk.Fingerprint == t.Self {
		return false, false // an anonymous querier is no device, and we are not our peer
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peers == nil {
		t.peers = map[ident.Fingerprint]*Peer{}
	}
	id := pk.Fingerprint.ID()
	p := t.peers[pk.Fingerprint]
	if pk.Type == beacon.TypeGoodbye {
		t.bury(goneKey{pk.Fingerprint, pk.Instance})
		if p != nil {
			delete(t.peers, pk.Fingerprint)
			t.log().Info("peer left", "peer", id, "name", p.Name)
		}
		return false, false
	}
	if at, ok := t.gone[goneKey{pk.Fingerprint, pk.Instance}]; ok && source == SourceBeacon && t.now().Sub(at) < goneFor {
		return false, false // sent before its goodbye, read after it
	}
	switch {
	case p == nil:
		if !t.admit(pk.Fingerprint) {
			return false, false
		}
		fresh = true
		p = &Peer{ID: id, Fingerprint: pk.Fingerprint, Source: source, instance: pk.Instance}
		t.peers[pk.Fingerprint] = p
		defer func() {
			t.log().Info("peer found", "peer", id, "name", p.Name, "addresses", p.Addresses, "source", source)
		}()
	case source != SourceBeacon:
		// mDNS carries no instance nonce: it never means a restart.
	case p.instance == 0:
		p.instance = pk.Instance // the first beacon after mDNS
	case p.instance != pk.Instance:
		t.log().Info("peer restarted", "peer", id, "name", pk.Name)
		p.instance, p.Addresses = pk.Instance, nil
	}
	if !slices.Contains(p.Sources, source) {
		p.Sources = append(p.Sources, source)
	}
	p.merge(ev)
	return true, fresh
}

// bury remembers that a device's run said goodbye (t.mu held). The
// record is bounded: when full, the expired entries go, and arbitrary
// ones while it is still full.
func (t *Table) bury(k goneKey) {
	if k.instance == 0 {
		return
	}
	now := t.now()
	if t.gone == nil {
		t.gone = map[goneKey]time.Time{}
	}
	if len(t.gone) >= maxGone {
		for old, at := range t.gone {
			if now.Sub(at) >= goneFor || len(t.gone) >= maxGone {
				delete(t.gone, old)
			}
		}
	}
	t.gone[k] = now
}

// mdnsNeeded reports whether mDNS finds what the beacon does not: a peer
// seen by mDNS alone, or no peer at all (then a browse costs one query
// that nobody answers).
func (t *Table) mdnsNeeded() bool {
	peers := t.Peers()
	for _, p := range peers {
		if !slices.Contains(p.Sources, SourceBeacon) {
			return true
		}
	}
	return len(peers) == 0
}

// admit makes room for the new peer fp, or reports that it is refused
// (t.mu held).
func (t *Table) admit(fp ident.Fingerprint) bool {
	now := t.now()
	paired := t.Paired != nil && t.Paired(fp)
	if t.arrival == nil {
		t.arrival = rate.NewLimiter(newPeerRate, newPeerBurst)
	}
	if !paired && !t.arrival.AllowN(now, 1) {
		t.refused++
		return false
	}
	max := t.Max
	if max <= 0 {
		max = DefaultMaxPeers
	}
	if len(t.peers) < max {
		return true
	}
	var oldest *Peer
	for f, p := range t.peers {
		if t.TTL > 0 && now.Sub(p.LastSeen) > t.TTL {
			delete(t.peers, f)
			return true
		}
		if (t.Paired == nil || !t.Paired(f)) && (oldest == nil || p.LastSeen.Before(oldest.LastSeen)) {
			oldest = p
		}
	}
	if now.Sub(t.logged) > time.Minute {
		t.logged = now
		t.log().Warn("peer table full: evicting the unpaired peer seen longest ago", "max", max)
	}
	if oldest == nil {
		t.refused++
		return false
	}
	delete(t.peers, oldest.Fingerprint)
	return true
}

func (t *Table) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Refused counts the new peers the table refused.
func (t *Table) Refused() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.refused
}

// Peers returns the live peers, sorted by name, and drops expired ones.
func (t *Table) Peers() []Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var out []Peer
	for fp, p := range t.peers {
		if t.TTL > 0 && now.Sub(p.LastSeen) > t.TTL {
			delete(t.peers, fp)
			t.log().Info("peer expired", "peer", p.ID, "name", p.Name)
			continue
		}
		c := *p
		c.Addresses = slices.Clone(p.Addresses)
		c.Sources = slices.Clone(p.Sources)
		out = append(out, c)
	}
	sortPeers(out)
	return out
}

func (t *Table) log() *slog.Logger {
	if t.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Logger
}

func sortPeers(ps []Peer) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Name != ps[j].Name {
			return ps[i].Name < ps[j].Name
		}
		return ps[i].ID < ps[j].ID
	})
}

// DiscoverOptions tunes Discover.
type DiscoverOptions struct {
	// First returns as soon as one device answered.
	First bool
	// Exclude is this device's own fingerprint, left out of the result.
	Exclude ident.Fingerprint
	// NoMDNS leaves mDNS out: beacons only.
	NoMDNS bool
	Logger *slog.Logger
}

// Discover asks the LAN by beacon and by mDNS at once and returns the
// devices that answered either before ctx ended (or the first one, with
// First). It fails only when neither source could ask.
func Discover(ctx context.Context, cfg beacon.Config, opt DiscoverOptions) ([]Peer, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := Table{Self: opt.Exclude}
	start := time.Now()
	var mu sync.Mutex
	elapsed := map[ident.Fingerprint]float64{}
	observe := func(source string, ev beacon.Event, ans *MDNSAnswer) {
		fp := ev.Packet.Fingerprint
		if fp.IsZero() || fp == opt.Exclude {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if _, ok := elapsed[fp]; !ok {
			elapsed[fp] = ms(time.Since(start))
		}
		if ans != nil {
			t.ObserveMDNS(MDNSEntry{ev, *ans})
		} else {
			t.ObserveFrom(source, ev)
		}
		if opt.First {
			cancel()
		}
	}
	mdnsErr := make(chan error, 1)
	if opt.NoMDNS {
		mdnsErr <- errors.New("mdns off")
	} else {
		go func() {
			mdnsErr <- BrowseMDNS(ctx, cfg.Interfaces, opt.Logger, func(e MDNSEntry) { observe(SourceMDNS, e.Event, &e.Answer) })
		}()
	}
	berr := beacon.Query(ctx, cfg, func(ev beacon.Event) bool {
		observe(SourceBeacon, ev, nil)
		return true
	})
	var err error
	if berr != nil {
		select {
		case merr := <-mdnsErr:
			if merr != nil {
				err = fmt.Errorf("%w; %v", berr, merr)
			}
		case <-ctx.Done():
		}
	}
	mu.Lock()
	defer mu.Unlock()
	cancel() // late entries are ignored from here on
	peers := t.Peers()
	for i := range peers {
		peers[i].ElapsedMS = elapsed[peers[i].Fingerprint]
	}
	return peers, err
}

// BeaconReports returns a stage-3 function: it sends a query and collects
// where the answering peers see us, returning shortly after the first
// answer (grace) or when ctx ends.
func BeaconReports(cfg beacon.Config, grace time.Duration) func(context.Context) ([]Report, error) {
	return func(ctx context.Context) ([]Report, error) {
		var reports []Report
		var stop <-chan time.Time
		qctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		got := make(chan Report, 16)
		go func() {
			done <- beacon.Query(qctx, cfg, func(ev beacon.Event) bool {
				pk := ev.Packet
				if !pk.SeenAs.IsValid() || pk.Fingerprint == cfg.Fingerprint {
					return true
				}
				select {
				case got <- Report{SeenAs: withZone(pk.SeenAs, ev.Interface), Interface: ev.Interface,
					PeerID: pk.Fingerprint.ID(), PeerName: pk.Name, From: ev.From}:
				default:
				}
				return true
			})
		}()
		for {
			select {
			case r := <-got:
				reports = append(reports, r)
				if stop == nil {
					stop = time.After(grace)
				}
			case <-stop:
				cancel()
				stop = nil
			case err := <-done:
				for len(got) > 0 {
					reports = append(reports, <-got)
				}
				return reports, err
			}
		}
	}
}
