package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// The stages of Acquire, each returning its record and the addresses it
// confirmed: preferred (stage 1), sweep (stage 2), peer (stage 3).

// RouteProbe is stage 1's finding for one outside destination.
type RouteProbe struct {
	Target    string `json:"target"`
	Source    string `json:"source,omitempty"`
	Interface string `json:"interface,omitempty"`
	Result    string `json:"result"` // confirmed | no route | not addressable | ...
	Evidence  string `json:"evidence,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (a *Acquirer) preferred(ctx context.Context, ifs []net.Interface) (Stage, []Address) {
	targets := a.RouteTargets
	if targets == nil {
		targets = DefaultRouteTargets
	}
	var probes []RouteProbe
	var found []Address
	var errs []error
	for _, t := range targets {
		pr := RouteProbe{Target: t.Addr().String()}
		src, err := routeSource(t)
		if err != nil {
			err = fmt.Errorf("%w: %s: %v", ErrNoRoute, t.Addr(), err)
			pr.Result, pr.Error = "no route", err.Error()
			errs = append(errs, err)
			probes = append(probes, pr)
			continue
		}
		ifname := interfaceOf(ifs, src)
		src = withZone(src, ifname)
		pr.Source, pr.Interface = src.String(), ifname
		ev, err := a.ping(ctx, src)
		if err != nil {
			pr.Result, pr.Error = resultOf(err), err.Error()
			errs = append(errs, err)
		} else {
			pr.Result, pr.Evidence = "confirmed", ev.String()
			found = append(found, Address{IP: src, Interface: ifname, Stage: StagePreferred, Confirmed: true, Evidence: ev.String(), Proofs: []Proof{selfProof(ev)}})
		}
		probes = append(probes, pr)
	}
	s := Stage{Status: StatusPass, Details: map[string]any{"routes": probes}}
	if len(targets) == 0 {
		errs = append(errs, fmt.Errorf("%w: no outside destination configured", ErrNoRoute))
	}
	if len(found) == 0 {
		s.Status, s.err = StatusFail, errors.Join(errs...)
	}
	return s, found
}

// routeSource asks the kernel which local address would be used to reach
// t: its own route lookup, policy rules included (netlink, as 'ip route
// get'); where netlink is not there, a UDP connect, which sends no packet.
func routeSource(t netip.AddrPort) (netip.Addr, error) {
	if r, err := RouteTo(t.Addr()); err == nil && r.Source != "" {
		if src, err := netip.ParseAddr(r.Source); err == nil {
			return src.Unmap(), nil
		}
	} else if err != nil && r.Error != "" && !strings.Contains(r.Error, "protocol not supported") {
		return netip.Addr{}, errors.New(r.Error)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(t))
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// Candidate is stage 2's finding for one interface address.
type Candidate struct {
	IP        string `json:"ip"`
	Interface string `json:"interface"`
	// Virtual: a tunnel, a virtual link or no carrier (the kernel's
	// facts): its address ranks last.
	Virtual  bool   `json:"virtual,omitempty"`
	Result   string `json:"result"`
	Evidence string `json:"evidence,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Skipped is an interface stage 2 did not sweep, and why.
type Skipped struct {
	Interface string `json:"interface"`
	Reason    string `json:"reason"`
}

func (a *Acquirer) sweep(ctx context.Context, ifs []net.Interface) (Stage, []Address) {
	type cand struct {
		ip      netip.Addr
		ifname  string
		virtual bool
	}
	links := a.links()
	var cands []cand
	var skipped []Skipped
	for _, ifi := range ifs {
		switch {
		case ifi.Flags&net.FlagLoopback != 0:
			continue
		case ifi.Flags&net.FlagUp == 0:
			skipped = append(skipped, Skipped{ifi.Name, "down"})
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			skipped = append(skipped, Skipped{ifi.Name, err.Error()})
			continue
		}
		for _, ad := range addrs {
			pfx, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(pfx.IP)
			ip = ip.Unmap()
			ones, bits := pfx.Mask.Size()
			if !ip.IsPrivate() && !ip.IsLinkLocalUnicast() && !(ip.Is6() && ip.IsGlobalUnicast() && ones < bits) {
				continue // public IPv4, loopback, a lone /128, or other: not a LAN address
			}
			f, known := links[ifi.Name]
			cands = append(cands, cand{withZone(ip, ifi.Name), ifi.Name, known && f.Demoted()})
		}
	}
	// Order: LAN links with carrier before tunnels, virtual links and
	// links without carrier; IPv4, then ULA, then link-local.
	rank := func(c cand) int {
		r := 0
		if c.virtual {
			r += 10
		}
		switch {
		case c.ip.Is4() && !c.ip.IsLinkLocalUnicast():
		case c.ip.Is6() && !c.ip.IsLinkLocalUnicast():
			r += 1
		default:
			r += 2
		}
		return r
	}
	slices.SortStableFunc(cands, func(x, y cand) int { return rank(x) - rank(y) })

	details := map[string]any{}
	if len(skipped) > 0 {
		details["skipped"] = skipped
	}
	if len(cands) == 0 {
		details["candidates"] = []Candidate{}
		return Stage{Status: StatusFail, err: fmt.Errorf("%w: no private, link-local, ULA or on-link global IPv6 address on any up interface", ErrNoCandidates), Details: details}, nil
	}
	results := make([]Candidate, len(cands))
	evs := make([]*Evidence, len(cands))
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Go(func() {
			results[i] = Candidate{IP: c.ip.String(), Interface: c.ifname, Virtual: c.virtual}
			ev, err := a.ping(ctx, c.ip)
			if err != nil {
				results[i].Result, results[i].Error = resultOf(err), err.Error()
				return
			}
			results[i].Result, results[i].Evidence = "confirmed", ev.String()
			evs[i] = &ev
		})
	}
	wg.Wait()
	details["candidates"] = results
	var found []Address
	var errs []error
	for i, c := range cands {
		if evs[i] == nil {
			errs = append(errs, errors.New(results[i].Error))
			continue
		}
		found = append(found, Address{IP: c.ip, Interface: c.ifname, Stage: StageSweep, Confirmed: true, Evidence: evs[i].String(), Proofs: []Proof{selfProof(*evs[i])}})
	}
	if len(found) == 0 {
		return Stage{Status: StatusFail, err: fmt.Errorf("%w: none of %d candidates answered: %v", ErrNotAddressable, len(cands), errors.Join(errs...)), Details: details}, nil
	}
	return Stage{Status: StatusPass, Details: details}, found
}

// PeerCheck is stage 3's finding for one peer report.
type PeerCheck struct {
	Peer     string `json:"peer"`
	Name     string `json:"name,omitempty"`
	SeenAs   string `json:"seen_as"`
	Result   string `json:"result"`
	Evidence string `json:"evidence,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (a *Acquirer) peer(ctx context.Context, _ []net.Interface) (Stage, []Address) {
	d := a.PeerTimeout
	if d == 0 {
		d = DefaultPeerTimeout
	}
	qctx, cancel := context.WithTimeout(ctx, d)
	reports, err := a.Peers(qctx)
	cancel()
	if err != nil {
		return Stage{Status: StatusFail, err: fmt.Errorf("discovery query: %w", err)}, nil
	}
	if len(reports) == 0 {
		return Stage{Status: StatusFail, err: fmt.Errorf("%w within %s (multicast filtered, or no other device running pairing)", ErrNoPeers, d)}, nil
	}
	var checks []PeerCheck
	var found []Address
	tried := map[netip.Addr]*PeerCheck{}
	for _, r := range reports {
		pc := PeerCheck{Peer: r.PeerID, Name: r.PeerName, SeenAs: r.SeenAs.String()}
		if prev, ok := tried[r.SeenAs]; ok {
			pc.Result, pc.Evidence, pc.Error = prev.Result, prev.Evidence, prev.Error
		} else {
			ev, err := a.ping(ctx, r.SeenAs)
			if err != nil {
				pc.Result, pc.Error = resultOf(err), err.Error()
			} else {
				pc.Result, pc.Evidence = "confirmed", ev.String()
				found = append(found, Address{IP: r.SeenAs, Interface: r.Interface, Stage: StagePeer, Confirmed: true,
					Evidence: fmt.Sprintf("seen by %s; %s", r.PeerID, ev),
					Proofs:   []Proof{{Kind: ProofSeen, At: time.Now(), By: r.PeerID, Via: "beacon report"}, selfProof(ev)}})
			}
			tried[r.SeenAs] = &pc
		}
		checks = append(checks, pc)
	}
	s := Stage{Status: StatusPass, Details: map[string]any{"reports": checks}}
	if len(found) == 0 {
		s.Status, s.err = StatusFail, fmt.Errorf("%w: no address reported by %d peer(s) reaches our listener", ErrNotAddressable, len(reports))
	}
	return s, found
}
