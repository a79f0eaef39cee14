package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/internal/run"
)

// Defaults of Own; zero fields of OwnConfig mean these.
const (
	// DefaultRetryInterval is how often the acquisition is retried while
	// no address is confirmed (peers may appear later).
	DefaultRetryInterval = 10 * time.Second
	// DefaultRecheckInterval is how often it re-runs when addresses are
	// known: a poll that notices changes netlink missed.
	DefaultRecheckInterval = 60 * time.Second
	// observedRecheck: a peer's observation of an address already being
	// checked is not checked again within this time.
	observedRecheck = time.Second
	// maxObserved caps the addresses peers' observations may add: a host
	// has a handful of addresses, a flood of observations has many.
	maxObserved = 64
	// observedRate and observedBurst bound the self-pings peers'
	// observations start, all peers together.
	observedRate  = rate.Limit(2)
	observedBurst = 10
)

// Errors of Observed.
var (
	// ErrNotOwn: the address is not one of our interfaces' (loopback,
	// multicast, another host's, or on an ignored interface).
	ErrNotOwn = errors.New("not an address of this device")
	// ErrObservedRate: too many observations to check now.
	ErrObservedRate = errors.New("too many observations; try later")
)

// OwnConfig configures Own.
type OwnConfig struct {
	Acquirer        *Acquirer
	RetryInterval   time.Duration
	RecheckInterval time.Duration
	// OnChange is called after the addresses changed, with the new ones
	// (best first) and the stages behind them. Calls never overlap and
	// come in the order of the changes.
	OnChange func(addrs []Address, stages []Stage)
	// OnAcquired is called once, when the first acquisition has finished,
	// just before Acquired is closed.
	OnAcquired func()
	// OnNetworkChange is called when interfaces or addresses change,
	// before the acquisition runs again.
	OnNetworkChange func()
	// IsOwn reports whether an address a peer says it sees us at is ours;
	// nil: IsOwn on the acquirer's interfaces.
	IsOwn func(netip.Addr) bool
	// Probe asks a peer for a reverse probe of our addresses; nil: no
	// reverse probes.
	Probe  ProbeFunc
	Logger *slog.Logger
}

// Own is this device's own addresses: the staged acquisition in a loop,
// run again when the network changes, plus the addresses peers'
// observations confirmed. Safe for concurrent use.
type Own struct {
	cfg       OwnConfig
	group     *run.Group
	acquired  chan struct{}
	reacquire chan struct{}
	prober    *prober // nil without OwnConfig.Probe
	// update serializes changes and their OnChange calls.
	update sync.Mutex

	mu      sync.Mutex
	addrs   []Address
	stages  []Stage
	changed time.Time
	observations
	evidence
}

// observations are the addresses peers said they see us at.
type observations struct {
	observed map[netip.Addr]Address   // confirmed from peers' observations
	checking map[netip.Addr]time.Time // observations being confirmed
	rate     *rate.Limiter            // of the self-pings observations start
}

// evidence is what other hosts showed about our addresses, and the
// kernel's facts the ranking needs.
type evidence struct {
	// proofs by address (zone cleared): reached, seen, not-reached;
	// at most maxObserved addresses.
	proofs map[netip.Addr][]Proof
	links  linkCache
}

// NewOwn returns an Own that does nothing until Start.
func NewOwn(cfg OwnConfig) *Own {
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.RecheckInterval <= 0 {
		cfg.RecheckInterval = DefaultRecheckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IsOwn == nil {
		acq := cfg.Acquirer
		cfg.IsOwn = func(a netip.Addr) bool { return IsOwn(acq.interfaces, a) }
	}
	o := &Own{cfg: cfg, group: run.New(), acquired: make(chan struct{}), reacquire: make(chan struct{}, 1),
		observations: observations{observed: map[netip.Addr]Address{}, checking: map[netip.Addr]time.Time{}, rate: rate.NewLimiter(observedRate, observedBurst)},
		evidence:     evidence{proofs: map[netip.Addr][]Proof{}}}
	if cfg.Probe != nil {
		o.prober = &prober{own: o, probe: cfg.Probe, now: make(chan struct{}, 1)}
	}
	return o
}

// ProbeSoon asks for a round of reverse probes (a new peer appeared).
func (o *Own) ProbeSoon() {
	if o.prober != nil {
		o.prober.soon()
	}
}

// Start runs the acquisition loop and the network watch.
func (o *Own) Start() {
	o.group.Go(o.loop)
	if o.prober != nil {
		o.group.Go(o.prober.loop)
	}
	o.group.Go(func(ctx context.Context) {
		WatchNetwork(ctx, o.cfg.Logger, func() {
			o.cfg.Logger.Info("network changed; finding own addresses again")
			o.links.invalidate()
			if o.cfg.OnNetworkChange != nil {
				o.cfg.OnNetworkChange()
			}
			o.Reacquire()
		})
	})
}

// Close stops the loop and every confirmation in flight; safe twice.
func (o *Own) Close() { o.group.Close() }

// Acquired is closed once the first acquisition has finished.
func (o *Own) Acquired() <-chan struct{} { return o.acquired }

// Addresses are the confirmed own addresses, best first, the stages of
// the last acquisition and when the addresses last changed.
func (o *Own) Addresses() ([]Address, []Stage, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.addrs), slices.Clone(o.stages), o.changed
}

// IPs are the confirmed own addresses, best first.
func (o *Own) IPs() []netip.Addr {
	o.mu.Lock()
	defer o.mu.Unlock()
	return ips(o.addrs)
}

// Reacquire asks for a new acquisition now.
func (o *Own) Reacquire() {
	select {
	case o.reacquire <- struct{}{}:
	default:
	}
}

// Observed is a peer (by) saying it sees us at addr. Only an address of
// one of our (not ignored) interfaces is taken, and used only after our
// own listener received a nonce there.
func (o *Own) Observed(addr netip.Addr, by string) error {
	addr = addr.Unmap().WithZone("")
	if !o.cfg.IsOwn(addr) {
		return fmt.Errorf("%w: %s", ErrNotOwn, addr)
	}
	o.prove(addr, Proof{Kind: ProofSeen, At: time.Now(), By: by, Via: "observed"})
	now := time.Now()
	o.mu.Lock()
	known := slices.ContainsFunc(o.addrs, func(a Address) bool { return a.IP.WithZone("") == addr })
	recent := now.Sub(o.checking[addr]) < observedRecheck
	full := len(o.observed) >= maxObserved
	if !known && !recent && !full && !o.rate.Allow() {
		o.mu.Unlock()
		return ErrObservedRate
	}
	if !known && !recent && !full {
		for a, at := range o.checking {
			if now.Sub(at) >= observedRecheck {
				delete(o.checking, a)
			}
		}
		o.checking[addr] = now
	}
	o.mu.Unlock()
	if known || recent || full {
		return nil
	}
	o.group.Go(func(ctx context.Context) {
		a, err := o.cfg.Acquirer.ConfirmObserved(ctx, addr, by)
		if err != nil {
			o.cfg.Logger.Info("observed: a peer's view of our address did not confirm", "addr", addr, "by", by, "err", err)
			return
		}
		o.cfg.Logger.Info("observed: address confirmed from a peer's view", "addr", a.IP, "by", by, "evidence", a.Evidence)
		o.set(func(addrs []Address, stages []Stage) ([]Address, []Stage) {
			o.observed[addr] = a
			if slices.ContainsFunc(addrs, func(x Address) bool { return x.IP.WithZone("") == addr }) {
				return addrs, stages
			}
			return append(addrs, a), stages
		})
	})
	return nil
}

func (o *Own) loop(ctx context.Context) {
	first := true
	for {
		res := o.cfg.Acquirer.Acquire(ctx)
		if ctx.Err() != nil {
			return
		}
		o.keepObserved(ctx, res.Addresses)
		o.set(func([]Address, []Stage) ([]Address, []Stage) {
			addrs := slices.Clone(res.Addresses)
			for ip, a := range o.observed {
				if !slices.ContainsFunc(addrs, func(x Address) bool { return x.IP.WithZone("") == ip }) {
					addrs = append(addrs, a)
				}
			}
			return addrs, res.Stages
		})
		if first {
			first = false
			if o.cfg.OnAcquired != nil {
				o.cfg.OnAcquired()
			}
			close(o.acquired)
		}
		wait := o.cfg.RecheckInterval
		if len(res.Addresses) == 0 {
			wait = o.cfg.RetryInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-o.reacquire:
		}
	}
}

// keepObserved checks the addresses peers' observations confirmed again
// (those the acquisition did not find itself); those that fail now are
// forgotten.
func (o *Own) keepObserved(ctx context.Context, found []Address) {
	o.mu.Lock()
	obs := make([]Address, 0, len(o.observed))
	for _, a := range o.observed {
		obs = append(obs, a)
	}
	o.mu.Unlock()
	for _, a := range obs {
		if slices.ContainsFunc(found, func(x Address) bool { return x.IP.WithZone("") == a.IP.WithZone("") }) {
			continue
		}
		if _, err := o.cfg.Acquirer.ConfirmObserved(ctx, a.IP, "earlier peer"); err != nil {
			o.mu.Lock()
			delete(o.observed, a.IP.WithZone(""))
			o.mu.Unlock()
		}
	}
}

// Reached records that another host (by, from remote) connected to our
// address local (via: what it asked for; trust: who by is). It is the
// strongest proof an address works; from a paired or pairing device it
// ranks the address first. A stranger's is recorded and moves nothing.
// A connection from this host itself (a self-ping) is not another host.
func (o *Own) Reached(local, remote netip.Addr, by, via, trust string) {
	local, remote = local.Unmap(), remote.Unmap()
	if !local.IsValid() || local.IsLoopback() || !remote.IsValid() || remote.IsLoopback() ||
		remote.WithZone("") == local.WithZone("") || o.cfg.IsOwn(remote) {
		return
	}
	o.prove(local, Proof{Kind: ProofReached, At: time.Now(), By: by, Via: via, Detail: "from " + remote.String(), Trust: trust})
}

// NotReached records that a device (by, of trust) dialled our address
// for us and the connection did not arrive (a reverse probe); outcome
// is the probe's result (ProbeTimeout, ProbeRefused, …).
func (o *Own) NotReached(addr netip.Addr, by, trust, outcome string) {
	o.prove(addr.Unmap(), Proof{Kind: ProofUnreached, At: time.Now(), By: by, Via: "reverse probe", Detail: outcome, Trust: trust})
}

// prove records p for addr. When it can change the ranking (an
// identified giver's proof that is new or had gone stale, or an address
// not yet known), the addresses are ranked again in the background.
func (o *Own) prove(addr netip.Addr, p Proof) {
	key := addr.WithZone("")
	o.mu.Lock()
	old, had := o.proofs[key]
	if !had && len(o.proofs) >= maxObserved {
		o.evictProofs()
	}
	prev, seen := Address{Proofs: old}.latest(func(x Proof) bool { return x.Kind == p.Kind && x.By == p.By && x.Trust == p.Trust })
	tmp := Address{Proofs: old}
	tmp.addProof(p)
	o.proofs[key] = tmp.Proofs
	known := slices.ContainsFunc(o.addrs, func(a Address) bool { return a.IP.WithZone("") == key })
	rerank := p.identified() && (!seen || p.At.Sub(prev.At) >= ReachedFresh/2 ||
		// reached and not-reached contradict each other: the later wins.
		slices.ContainsFunc(old, func(x Proof) bool {
			return x.identified() && x.Kind != p.Kind && (x.Kind == ProofUnreached || x.Kind == ProofReached)
		}))
	o.mu.Unlock()
	if !rerank && known {
		return
	}
	o.group.Go(func(context.Context) {
		o.set(func(addrs []Address, stages []Stage) ([]Address, []Stage) {
			if !slices.ContainsFunc(addrs, func(a Address) bool { return a.IP.WithZone("") == key }) && p.Kind == ProofReached {
				// Another host reached an address no stage confirmed
				// (a self-ping the local firewall drops): it works.
				ifs, _ := o.cfg.Acquirer.interfaces()
				ifname := interfaceOf(ifs, key)
				addrs = append(addrs, Address{IP: withZone(key, ifname), Interface: ifname, Stage: StagePeer, Confirmed: true,
					Evidence: "reached by " + p.By})
			}
			return addrs, stages
		})
	})
}

// evictProofs makes room in the proofs (under o.mu): those of addresses
// we no longer have go first (rotating IPv6 temporary addresses, a new
// DHCP lease), else the one whose latest proof is oldest.
func (o *Own) evictProofs() {
	for k := range o.proofs {
		if !slices.ContainsFunc(o.addrs, func(a Address) bool { return a.IP.WithZone("") == k }) {
			delete(o.proofs, k)
		}
	}
	if len(o.proofs) < maxObserved {
		return
	}
	var oldest netip.Addr
	var at time.Time
	for k, ps := range o.proofs {
		latest := slices.MaxFunc(ps, func(x, y Proof) int { return x.At.Compare(y.At) }).At
		if !oldest.IsValid() || latest.Before(at) {
			oldest, at = k, latest
		}
	}
	delete(o.proofs, oldest)
}

// decorate adds the proofs other hosts gave (by address, zone cleared)
// to addrs and ranks them.
func decorate(addrs []Address, proofs map[netip.Addr][]Proof, links map[string]LinkFacts) {
	for i := range addrs {
		for _, p := range proofs[addrs[i].IP.WithZone("")] {
			addrs[i].addProof(p)
		}
	}
	rankAddresses(addrs, links, time.Now())
}

// set replaces the addresses and stages with what f returns. f runs under
// the lock and gets copies of the current ones, so concurrent updates
// (the loop, a peer's observation) never undo each other. OnChange then
// runs outside the state lock, in order.
func (o *Own) set(f func([]Address, []Stage) ([]Address, []Stage)) {
	o.update.Lock()
	defer o.update.Unlock()
	o.mu.Lock()
	old := ips(o.addrs)
	o.addrs, o.stages = f(slices.Clone(o.addrs), slices.Clone(o.stages))
	decorate(o.addrs, o.proofs, o.links.get())
	addrs, stages := slices.Clone(o.addrs), slices.Clone(o.stages)
	changed := !slices.Equal(old, ips(addrs))
	if changed {
		o.changed = time.Now()
	}
	o.mu.Unlock()
	if !changed {
		return
	}
	logChange(o.cfg.Logger, addrs, stages, o.cfg.RetryInterval)
	o.ProbeSoon()
	if o.cfg.OnChange != nil {
		o.cfg.OnChange(addrs, stages)
	}
}

func logChange(log *slog.Logger, addrs []Address, stages []Stage, retry time.Duration) {
	for _, s := range stages {
		log.Info("address stage", "stage", s.Name, "status", s.Status, "err", s.Error, "duration_ms", s.DurationMS)
	}
	if len(addrs) == 0 {
		var why []any
		for _, s := range stages {
			why = append(why, s.Name, s.Status+": "+s.Error)
		}
		log.Warn("no reachable own address; retrying", append(why, "retry", retry)...)
		return
	}
	best := addrs[0]
	log.Info("own addresses", "addresses", ips(addrs), "best", best.IP, "interface", best.Interface, "stage", best.Stage, "why", best.RankReason)
}

func ips(as []Address) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		out = append(out, a.IP)
	}
	return out
}
