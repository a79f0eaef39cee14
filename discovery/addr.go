package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Stage names and statuses, as they appear in JSON.
const (
	StagePreferred = "preferred"
	StageSweep     = "sweep"
	StagePeer      = "peer"

	StatusPass = "pass"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// Defaults of Acquirer; zero fields mean these.
var (
	// DefaultRouteTargets are documentation addresses (TEST-NET-1,
	// 2001:db8::/32): the routing table answers for them as for any
	// outside address, and since the UDP connect sends nothing, no packet
	// ever goes there.
	DefaultRouteTargets = []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.1:9"),
		netip.MustParseAddrPort("[2001:db8::1]:9"),
	}
)

const (
	// DefaultPingTimeout bounds one self-ping. A local dial answers in
	// well under a millisecond; only a firewall that drops makes it wait.
	DefaultPingTimeout = 500 * time.Millisecond
	// DefaultAnswerWait is how long a self-ping whose connect succeeded
	// waits for its nonce: under load (many daemons starting at once on a
	// small machine) the answer can take a second or more.
	DefaultAnswerWait = 3 * time.Second
	// DefaultPeerTimeout bounds stage 3's wait for peers to answer.
	DefaultPeerTimeout = 1 * time.Second
	// DefaultReportGrace is how long stage 3 waits for more peers after
	// the first answer: peers reply within beacon.DefaultReplyDelayMax
	// (10 ms), so 50 ms collects them all without waiting the whole timeout.
	DefaultReportGrace = 50 * time.Millisecond
)

// Address is one confirmed own address.
type Address struct {
	IP        netip.Addr `json:"ip"`
	Interface string     `json:"interface"`
	Stage     string     `json:"stage"`
	Confirmed bool       `json:"confirmed"`
	Evidence  string     `json:"evidence,omitempty"`
	// Proofs are the evidence that the address works, strongest first:
	// reached by another host, seen by a peer, self-ping (or that it
	// does not: not-reached).
	Proofs []Proof `json:"proofs,omitempty"`
	// Link is what the kernel says about the interface.
	Link *LinkFacts `json:"link,omitempty"`
	// Rank orders addresses (1 best: RankReached … RankDemoted);
	// RankReason says why the address ranks there.
	Rank       int    `json:"rank"`
	RankReason string `json:"rank_reason"`
}

// Stage is the record of one stage.
type Stage struct {
	Name       string        `json:"name"`
	Status     string        `json:"status"`
	Error      string        `json:"error,omitempty"`
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
	Details    any           `json:"details,omitempty"`
	err        error
}

// Err is the stage's error (nil unless it failed or was skipped).
func (s Stage) Err() error { return s.err }

// Result is the outcome of an acquisition: the confirmed addresses, best
// first, and every stage.
type Result struct {
	Addresses  []Address     `json:"addresses"`
	Stages     []Stage       `json:"stages"`
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
	// FirstMS is the time from the start to the first confirmed address.
	FirstMS float64 `json:"first_confirmed_ms,omitempty"`
}

// Report is a peer's statement of the address it saw us at.
type Report struct {
	SeenAs    netip.Addr // with zone when link-local
	Interface string     // where the report arrived
	PeerID    string
	PeerName  string
	From      netip.AddrPort
}

// Acquirer runs the staged own-address acquisition.
type Acquirer struct {
	Confirmer *Confirmer
	// Interfaces lists interfaces; nil means net.Interfaces.
	Interfaces func() ([]net.Interface, error)
	// RouteTargets are the outside destinations stage 1 asks the routing
	// table about; nil means DefaultRouteTargets.
	RouteTargets []netip.AddrPort
	// Peers asks peers where they see us (stage 3); nil skips stage 3.
	Peers func(ctx context.Context) ([]Report, error)
	// Links returns the kernel's facts about the interfaces, for the
	// ranking; nil means ReadLinks.
	Links       func() map[string]LinkFacts
	PingTimeout time.Duration
	PeerTimeout time.Duration
	Logger      *slog.Logger
}

func (a *Acquirer) links() map[string]LinkFacts {
	if a.Links != nil {
		return a.Links()
	}
	l, _ := ReadLinks()
	return l
}

// selfProof is the record of a self-ping that arrived.
func selfProof(ev Evidence) Proof {
	return Proof{Kind: ProofSelf, At: time.Now(), Via: "self-ping", Detail: ev.String()}
}

// Acquire runs the stages and returns every record. It never stops at a
// failed stage; ctx bounds the whole run.
func (a *Acquirer) Acquire(ctx context.Context) Result {
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	var res Result
	add := func(addrs []Address) {
		for _, ad := range addrs {
			if !slices.ContainsFunc(res.Addresses, func(x Address) bool { return x.IP == ad.IP }) {
				res.Addresses = append(res.Addresses, ad)
			}
		}
		if len(res.Addresses) > 0 && res.FirstMS == 0 {
			res.FirstMS = ms(time.Since(start))
		}
	}
	for _, name := range []string{StagePreferred, StageSweep, StagePeer} {
		var s Stage
		var found []Address
		if name == StagePeer && len(res.Addresses) > 0 {
			s = Stage{Name: name, Status: StatusSkip, Error: "an earlier stage confirmed an address"}
		} else {
			s, found = a.RunStage(ctx, name)
		}
		log.Debug("addr: stage", "stage", s.Name, "status", s.Status, "err", s.Error, "confirmed", len(found), "duration", s.Duration.Round(time.Microsecond))
		res.Stages = append(res.Stages, s)
		add(found)
	}
	rankAddresses(res.Addresses, a.links(), time.Now())
	res.Duration = time.Since(start)
	res.DurationMS = ms(res.Duration)
	return res
}

// RunStage runs one stage alone (for diagnostics): StagePreferred,
// StageSweep or StagePeer.
func (a *Acquirer) RunStage(ctx context.Context, name string) (Stage, []Address) {
	ifs, _ := a.interfaces()
	t0 := time.Now()
	var s Stage
	var found []Address
	switch name {
	case StagePreferred:
		s, found = a.preferred(ctx, ifs)
	case StageSweep:
		s, found = a.sweep(ctx, ifs)
	case StagePeer:
		if a.Peers == nil {
			s = Stage{Status: StatusSkip, Error: "no discovery available"}
		} else {
			s, found = a.peer(ctx, ifs)
		}
	default:
		s = Stage{Status: StatusFail, err: fmt.Errorf("unknown stage %q", name)}
	}
	s.Name, s.Duration = name, time.Since(t0)
	s.DurationMS = ms(s.Duration)
	if s.err != nil {
		s.Error = s.err.Error()
	}
	return s, found
}

func (a *Acquirer) interfaces() ([]net.Interface, error) {
	if a.Interfaces != nil {
		return a.Interfaces()
	}
	return net.Interfaces()
}

func (a *Acquirer) ping(ctx context.Context, ip netip.Addr) (Evidence, error) {
	d := a.PingTimeout
	if d == 0 {
		d = DefaultPingTimeout
	}
	// d bounds the connect (a firewall that drops fails fast); the
	// nonce's answer may take longer on a busy machine.
	ctx, cancel := context.WithTimeout(ctx, d+DefaultAnswerWait)
	defer cancel()
	return a.Confirmer.PingConnect(ctx, ip, d)
}

func resultOf(err error) string {
	switch {
	case errors.Is(err, ErrNoRoute):
		return "no route"
	case errors.Is(err, ErrOtherHost):
		return "other host"
	case errors.Is(err, ErrNotAddressable):
		return "not addressable"
	}
	return "error"
}

// interfaceOf names the interface that has ip, or "".
func interfaceOf(ifs []net.Interface, ip netip.Addr) string {
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		for _, ad := range addrs {
			if pfx, ok := ad.(*net.IPNet); ok {
				if x, _ := netip.AddrFromSlice(pfx.IP); x.Unmap() == ip.WithZone("") {
					return ifi.Name
				}
			}
		}
	}
	return ""
}

func withZone(ip netip.Addr, ifname string) netip.Addr {
	if ip.Is6() && ip.IsLinkLocalUnicast() && ifname != "" {
		return ip.WithZone(ifname)
	}
	return ip
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ConfirmObserved self-pings an address a peer said it saw us at (the
// peer-assisted confirmation): it counts only when our own listener gets
// the nonce there, so a peer can never make us use an address that is
// not ours.
func (a *Acquirer) ConfirmObserved(ctx context.Context, ip netip.Addr, by string) (Address, error) {
	ifs, _ := a.interfaces()
	ifname := interfaceOf(ifs, ip.WithZone(""))
	ip = withZone(ip.WithZone(""), ifname)
	ev, err := a.ping(ctx, ip)
	if err != nil {
		return Address{}, err
	}
	return Address{IP: ip, Interface: ifname, Stage: StagePeer, Confirmed: true, Evidence: fmt.Sprintf("observed by %s; %s", by, ev),
		Proofs: []Proof{{Kind: ProofSeen, At: time.Now(), By: by, Via: "observed"}, selfProof(ev)}}, nil
}
