package discovery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/run"
)

const (
	// tellEvery limits how often one peer is told about one address.
	tellEvery = 30 * time.Second
	// maxTold caps the (peer, address) pairs remembered for tellEvery: a
	// flood of made-up peers cannot grow it, it only stops the telling.
	maxTold = 1024
	// tellTimeout bounds one call telling a peer where we see it.
	tellTimeout = 2 * time.Second
	// tellRate and tellBurst bound the calls to all peers together: a
	// flood of spoofed announces cannot make us dial anyone.
	tellRate  = rate.Limit(1)
	tellBurst = 8
	// tellGrace is how long a peer that lists no address of its own is
	// given to announce them before it is told: one that just started
	// has them a few ms later, and 60 devices starting together would
	// otherwise call each other hundreds of times (a third of the time a
	// LAN of 60 took to settle). maxPending caps those waiting.
	tellGrace  = 500 * time.Millisecond
	maxPending = 256
	// browseEvery and browseMax: mDNS is browsed every 15 s while it
	// finds a device the beacon does not (beacons are filtered for it:
	// mDNS is what works), and otherwise at intervals that double up to
	// browseMax. Every device answers every browse, so 60 devices
	// browsing every 15 s would be 236 answers a second on the LAN,
	// growing with N²; the beacon carries changes faster anyway.
	browseEvery = 15 * time.Second
	browseMax   = 5 * time.Minute
)

// NeighboursConfig configures Neighbours.
type NeighboursConfig struct {
	// Beacon is the beacon's configuration; Handle is set by Neighbours,
	// Self and Fingerprint by the caller.
	Beacon beacon.Config
	// Name is the device name at start (SetName changes it).
	Name string
	// Port is the pairing listener's port, advertised by mDNS.
	Port int
	// MDNS turns mDNS advertising and browsing on.
	MDNS bool
	// Paired reports whether a device is paired (the peer table never
	// evicts those); nil: none is.
	Paired func(ident.Fingerprint) bool
	// Tell tells the peer fp, at to, the address we see it at (the
	// discovery-failure mitigation); nil tells nobody.
	Tell func(ctx context.Context, to netip.AddrPort, fp ident.Fingerprint) error
	// OnNewPeer is called when a device enters the peer table; it must
	// not block.
	OnNewPeer func()
	Logger    *slog.Logger
}

// Neighbours is the devices around us and how we show ourselves to them:
// the beacon, mDNS advertising and browsing, the peer table, and telling
// peers where we see them. Safe for concurrent use.
type Neighbours struct {
	cfg    NeighboursConfig
	group  *run.Group
	table  *Table
	beacon *beacon.Beacon // nil when no multicast socket could be opened
	adv    *Advertiser    // nil without mDNS

	tell *teller
	// welcoming: an announce for new devices is scheduled.
	welcoming atomic.Bool
	// browseNow asks for an mDNS browse at once (the network changed).
	browseNow chan struct{}

	mu   sync.Mutex
	name string
}

// NewNeighbours opens the beacon (a host without multicast runs on
// without it: the QR code still works) and prepares mDNS.
func NewNeighbours(cfg NeighboursConfig) *Neighbours {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Beacon.AnnounceInterval == 0 {
		cfg.Beacon.AnnounceInterval = beacon.DefaultAnnounceInterval
	}
	cfg.Beacon.Logger = cfg.Logger
	if cfg.Beacon.Interfaces == nil {
		cfg.Beacon.Interfaces = net.Interfaces
	}
	links := &Links{Interfaces: cfg.Beacon.Interfaces}
	if cfg.Beacon.Accept == nil {
		cfg.Beacon.Accept = links.OnLink
	}
	group := run.New()
	n := &Neighbours{cfg: cfg, group: group, name: cfg.Name, browseNow: make(chan struct{}, 1),
		tell: &teller{self: cfg.Beacon.Fingerprint, onLink: links.OnLink, tell: cfg.Tell, log: cfg.Logger, group: group,
			told: map[string]time.Time{}, telling: map[ident.Fingerprint]bool{}, pending: map[ident.Fingerprint]netip.Addr{},
			rate: rate.NewLimiter(tellRate, tellBurst)},
		table: &Table{Logger: cfg.Logger, Self: cfg.Beacon.Fingerprint, TTL: 3 * cfg.Beacon.AnnounceInterval, Paired: cfg.Paired}}
	n.cfg.Beacon.Handle = n.onBeacon
	if cfg.MDNS {
		n.adv = &Advertiser{Name: cfg.Name, Fingerprint: cfg.Beacon.Fingerprint, Port: cfg.Port, Logger: cfg.Logger}
	}
	return n
}

// Start opens the beacon and starts browsing mDNS.
func (n *Neighbours) Start() {
	b, err := beacon.New(n.cfg.Beacon)
	if err != nil {
		n.cfg.Logger.Warn("beacon disabled", "err", err)
	}
	n.mu.Lock()
	n.beacon = b
	n.mu.Unlock()
	if n.adv != nil {
		n.group.Go(n.browse)
	}
}

// Close says goodbye, stops the responders and every goroutine; safe twice.
func (n *Neighbours) Close() {
	if b := n.beaconOrNil(); b != nil {
		b.Close()
	}
	if n.adv != nil {
		n.adv.Close()
	}
	n.group.Close()
}

func (n *Neighbours) beaconOrNil() *beacon.Beacon {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.beacon
}

// Name is the device name we show.
func (n *Neighbours) Name() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.name
}

// SetName renames the device: mDNS advertises the new name on addrs, and
// the beacon announces it at once.
func (n *Neighbours) SetName(name string, addrs []Address) {
	n.mu.Lock()
	old := n.name
	n.name = name
	n.mu.Unlock()
	if n.adv != nil && old != name {
		n.adv.SetName(name, addrs)
	}
	n.Announce()
}

// Advertise makes mDNS advertise addrs (the confirmed own addresses).
func (n *Neighbours) Advertise(addrs []Address) {
	if n.adv != nil {
		n.adv.Update(addrs)
	}
}

// Announce sends an announce now (our addresses, name or window changed).
func (n *Neighbours) Announce() {
	if b := n.beaconOrNil(); b != nil {
		if err := b.Announce(); err != nil {
			n.cfg.Logger.Warn("announce failed", "err", err)
		}
	}
}

// Refresh rejoins the beacon groups on the interfaces there are now.
func (n *Neighbours) Refresh() {
	if b := n.beaconOrNil(); b != nil {
		b.Refresh()
	}
	select {
	case n.browseNow <- struct{}{}:
	default:
	}
}

// Stats are the beacon's counters (zero without a beacon) and how many
// new devices the peer table refused.
func (n *Neighbours) Stats() (beacon.Stats, uint64) {
	var st beacon.Stats
	if b := n.beaconOrNil(); b != nil {
		st = b.Stats()
	}
	return st, n.table.Refused()
}

// Peers are the devices on the LAN now.
func (n *Neighbours) Peers() []Peer { return n.table.Peers() }

// Lookup is where the device fp can be reached now, from the peer table.
func (n *Neighbours) Lookup(fp ident.Fingerprint) []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range n.table.Peers() {
		if p.Fingerprint == fp {
			for _, a := range p.Addresses {
				out = append(out, netip.AddrPortFrom(a, p.Port))
			}
		}
	}
	return out
}

// onBeacon takes a packet from another device into the peer table and
// tells the peer where we see it when it does not seem to know.
func (n *Neighbours) onBeacon(ev beacon.Event) {
	in, fresh := n.table.Observe(ev)
	if !in {
		return
	}
	n.tell.observe(ev)
	if fresh {
		n.welcome()
		if n.cfg.OnNewPeer != nil {
			n.cfg.OnNewPeer()
		}
	}
}

// welcomeDelay spreads the announce that answers new devices: when many
// start at once, each sends one announce for all it saw in that time.
const welcomeDelay = 100 * time.Millisecond

// welcome announces soon after a new device appeared, so that one which
// missed our announces (lost while many devices started at once) learns
// of us at once, as Syncthing re-announces on a new device. New devices
// in the meantime share that one announce.
func (n *Neighbours) welcome() {
	if !n.welcoming.CompareAndSwap(false, true) {
		return
	}
	if !n.group.Go(func(ctx context.Context) {
		defer n.welcoming.Store(false)
		select {
		case <-ctx.Done():
		case <-time.After(welcomeDelay/2 + time.Duration(rand.Int64N(int64(welcomeDelay)))):
			n.Announce()
		}
	}) {
		n.welcoming.Store(false)
	}
}

// Known reports whether fp is in the peer table now.
func (n *Neighbours) Known(fp ident.Fingerprint) bool { return len(n.Lookup(fp)) > 0 }

// teller tells peers where we see them: the discovery-failure
// mitigation, bounded so that spoofed announces cannot make us dial.
type teller struct {
	self   ident.Fingerprint
	onLink func(netip.Addr) bool
	tell   func(ctx context.Context, to netip.AddrPort, fp ident.Fingerprint) error
	log    *slog.Logger
	group  *run.Group

	mu      sync.Mutex
	told    map[string]time.Time // by peer and address: when we told it
	telling map[ident.Fingerprint]bool
	pending map[ident.Fingerprint]netip.Addr // listed no address: told after tellGrace
	rate    *rate.Limiter
}

// tellObserved is the discovery-failure mitigation: when a peer's packet
// comes from an address the peer does not list as its own, we tell the
// peer that address, so it can confirm it. Only on-link sources are
// called, one call per peer at a time, at most tellRate calls a second.
func (n *teller) observe(ev beacon.Event) {
	pk := ev.Packet
	if n.tell == nil || pk.Fingerprint.IsZero() || pk.Fingerprint == n.self || pk.Port == 0 || pk.Type == beacon.TypeGoodbye {
		return
	}
	src := ev.From.Addr()
	if len(pk.Addrs) > 0 {
		n.mu.Lock()
		delete(n.pending, pk.Fingerprint) // it has addresses now
		n.mu.Unlock()
		if slices.ContainsFunc(pk.Addrs, func(a netip.Addr) bool { return a.WithZone("") == src.WithZone("") }) {
			return // it knows this address
		}
	}
	if !n.onLink(src) {
		return
	}
	key := pk.Fingerprint.String() + " " + src.String()
	if len(pk.Addrs) > 0 {
		if n.shouldTell(pk.Fingerprint, key, time.Now()) {
			n.group.Go(func(ctx context.Context) { n.call(ctx, pk, src) })
		}
		return
	}
	if !n.wait(pk.Fingerprint, src) {
		return
	}
	n.group.Go(func(ctx context.Context) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(tellGrace):
		}
		n.mu.Lock()
		_, still := n.pending[pk.Fingerprint]
		delete(n.pending, pk.Fingerprint)
		n.mu.Unlock()
		if still && n.shouldTell(pk.Fingerprint, key, time.Now()) {
			n.call(ctx, pk, src)
		} // else it announced its addresses in the meantime
	})
}

// call tells the peer of pk that we see it at src (shouldTell said yes).
func (n *teller) call(ctx context.Context, pk *beacon.Packet, src netip.Addr) {
	defer func() {
		n.mu.Lock()
		delete(n.telling, pk.Fingerprint)
		n.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, tellTimeout)
	defer cancel()
	if err := n.tell(ctx, netip.AddrPortFrom(src, pk.Port), pk.Fingerprint); err != nil {
		n.log.Debug("observed: telling peer failed", "peer", pk.Fingerprint.ID(), "at", src, "err", err)
		return
	}
	n.log.Info("observed: told peer where we see it", "peer", pk.Fingerprint.ID(), "name", pk.Name, "addr", src)
}

// wait records that fp, which lists no address, is to be told about src
// after tellGrace; false when it already waits or too many do.
func (n *teller) wait(fp ident.Fingerprint, src netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.pending[fp]; ok || len(n.pending) >= maxPending {
		return false
	}
	n.pending[fp] = src
	return true
}

// shouldTell records that key (of peer fp) is told now, unless it was
// told within tellEvery, a call to fp is in flight, the global rate is
// used up, or the record is full of recent entries.
func (n *teller) shouldTell(fp ident.Fingerprint, key string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if now.Sub(n.told[key]) < tellEvery || n.telling[fp] || n.rate.TokensAt(now) < 1 {
		return false
	}
	if len(n.told) >= maxTold {
		for k, at := range n.told {
			if now.Sub(at) >= tellEvery {
				delete(n.told, k)
			}
		}
		if len(n.told) >= maxTold {
			return false
		}
	}
	n.told[key] = now
	n.telling[fp] = true
	n.rate.AllowN(now, 1)
	return true
}

// browse asks mDNS for peers now and then: see browseEvery.
func (n *Neighbours) browse(ctx context.Context) {
	wait := browseEvery / 2 // doubled after the first browse
	for {
		err := BrowseMDNS(ctx, n.cfg.Beacon.Interfaces, n.cfg.Logger, func(e MDNSEntry) {
			if _, fresh := n.table.ObserveMDNS(e); fresh && n.cfg.OnNewPeer != nil {
				n.cfg.OnNewPeer()
			}
		})
		if err != nil {
			n.cfg.Logger.Debug("mdns: browse", "err", err)
		}
		wait = nextBrowse(wait, n.table.mdnsNeeded())
		select {
		case <-ctx.Done():
			return
		case <-n.browseNow:
			wait = browseEvery / 2
		case <-time.After(wait):
		}
	}
}

// nextBrowse is the wait after a browse that took wait: browseEvery while
// mDNS is needed, else twice as long, up to browseMax.
func nextBrowse(wait time.Duration, needed bool) time.Duration {
	if needed {
		return browseEvery
	}
	return min(max(2*wait, browseEvery), browseMax)
}
