package diag

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lanpairing/pairing/discovery"
)

// The analysis of reachability: what TCP to each peer met, and what
// other hosts said about reaching our addresses.

func concludePeerReach(a *analysis) {
	r := a.f.PeerReach
	if r == nil {
		return
	}
	if len(r.Peers) == 0 {
		a.skip[StepPeerReach] = "no peer found to probe"
		return
	}
	// Addresses on a LAN link that the kernel routes through a tunnel.
	if a.f.Peers != nil {
		for i, p := range a.f.Peers.Peers {
			for _, x := range p.Addresses {
				if x.Link != "" && x.RouteClass == discovery.ClassTunnel && x.Route != x.Link {
					a.add(Finding{ID: "peer-via-vpn", Severity: SevWarn, Step: StepPeerReach, Cause: CauseVPN,
						Text:  fmt.Sprintf("%s is on %s's subnet, but the kernel sends traffic for %s through %s", Printable(p.Name), x.Link, x.Addr, x.Route),
						Hint:  "a VPN route takes that part of the LAN: allow LAN access in the VPN (split tunnelling)",
						Facts: []string{fact(StepPeers, "peers", fmt.Sprintf("%d.addresses %s", i, x.Addr))}})
				}
			}
		}
	}
	n, okN := 0, 0
	for i, p := range r.Peers {
		n += len(p.Dials)
		ok := false
		for _, d := range p.Dials {
			if d.Outcome == DialOK {
				okN++
				ok = true
			}
		}
		pk := fact(StepPeerReach, "peers", fmt.Sprint(i))
		name := Printable(p.Name)
		switch {
		case ok && p.Small == "ok" && p.Large == "stalled":
			a.add(Finding{ID: "path-mtu", Severity: SevWarn, Step: StepPeerReach, Cause: CauseMTU,
				Text:  fmt.Sprintf("small packets pass but a full-size response stalls: %s", name),
				Hint:  "a path MTU problem: a link, switch port or tunnel with a smaller MTU drops full-size packets without telling — give every link on the path the same MTU (ip link set DEV mtu …), or lower this device's MTU to the smallest one",
				Facts: []string{pk + ".small", pk + ".large"}})
		case !ok:
			a.unreachablePeer(i, p, pk)
		default:
			a.droppedAddresses(p, pk)
		}
	}
	a.summary[StepPeerReach] = fmt.Sprintf("%d of %s of %s answer TCP", okN, plural(n, "address", "addresses"), plural(len(r.Peers), "peer", "peers"))
}

// unreachablePeer concludes on a peer none of whose addresses connected.
func (a *analysis) unreachablePeer(i int, p PeerReach, pk string) {
	name := Printable(p.Name)
	var found *FoundPeer
	if a.f.Peers != nil && i < len(a.f.Peers.Peers) && a.f.Peers.Peers[i].ID == p.ID {
		found = &a.f.Peers.Peers[i]
	}
	for _, d := range p.Dials {
		target, _ := netip.ParseAddrPort(d.Target)
		addr := target.Addr()
		dk := pk + ".dials " + d.Target
		link := a.f.Interfaces.linkOf(addr)
		neigh := p.Neighbours[addr.String()]
		if r := a.routeOf(addr); r != "" && r != link {
			link = "" // the kernel sends it elsewhere: its neighbour entry says nothing
		}
		switch {
		case d.Outcome == DialProhibited:
			where := "on the path at " + strings.TrimPrefix(d.Error, "ICMP administratively prohibited from ")
			if strings.HasSuffix(d.Error, addr.String()) {
				where = "on " + name
			}
			a.add(Finding{ID: "peer-prohibited", Severity: SevWarn, Step: StepPeerReach, Cause: CausePeerFilter,
				Text:  fmt.Sprintf("%s at %s rejects TCP with ICMP administratively prohibited: a packet filter %s refuses the pairing port", name, d.Target, where),
				Hint:  fmt.Sprintf("allow TCP port %d on %s (firewalld: firewall-cmd --add-port=%d/tcp)", target.Port(), name, target.Port()),
				Facts: []string{dk}})
			return
		case d.Outcome == DialTimeout && link != "" && (neigh == "FAILED" || neigh == "INCOMPLETE") && len(a.gatewaysAnswering()) > 0 && found != nil && len(found.Sources) > 0:
			// Its packets reach us (a beacon, or an mDNS answer: under
			// isolation only multicast ones can), its neighbour entry
			// fails, the gateway answers.
			a.add(Finding{ID: "client-isolation", Severity: SevWarn, Step: StepPeerReach, Cause: CauseIsolation,
				Text: fmt.Sprintf("%s's multicast arrives on %s, but it does not answer ARP at %s (%s) while the gateway %s does: the network passes its broadcasts but not unicast between devices",
					name, link, addr, neigh, strings.Join(a.gatewaysAnswering(), ", ")),
				Hint:  "the access point isolates its clients (AP/client isolation, common on guest Wi-Fi): turn it off, or use a network without it; a QR code cannot cross it either",
				Facts: []string{dk, pk + ".neighbours " + addr.String(), fact(StepPeers, "gateways", ""), fact(StepPeers, "peers", fmt.Sprintf("%d.sources", i))}})
			return
		case d.Outcome == DialTimeout && link != "" && neighbourAnswered(neigh):
			a.peerDropsTCP(p, d, neigh, pk)
			return
		}
	}
	var outcomes []string
	for _, d := range p.Dials {
		outcomes = append(outcomes, fmt.Sprintf("%s %s", d.Target, d.Outcome))
	}
	a.add(Finding{ID: "peer-unreachable", Severity: SevWarn, Step: StepPeerReach,
		Text:  fmt.Sprintf("%s answers discovery, but TCP to it does not connect: %s", name, strings.Join(outcomes, ", ")),
		Hint:  "the facts do not tell why: its daemon may be restarting, or a filter may drop the port; run 'pairing diag' on that device too",
		Facts: []string{pk + ".dials"}})
}

// droppedAddresses concludes on the addresses of a reachable peer that
// answer ARP but not TCP.
func (a *analysis) droppedAddresses(p PeerReach, pk string) {
	for _, d := range p.Dials {
		target, _ := netip.ParseAddrPort(d.Target)
		link := a.f.Interfaces.linkOf(target.Addr())
		if r := a.routeOf(target.Addr()); r != "" && r != link {
			continue
		}
		if neigh := p.Neighbours[target.Addr().String()]; d.Outcome == DialTimeout && link != "" && neighbourAnswered(neigh) {
			a.peerDropsTCP(p, d, neigh, pk)
		}
	}
}

// routeOf is the interface the kernel's lookup chose for a peer's
// address, "" when unknown.
func (a *analysis) routeOf(x netip.Addr) string {
	if a.f.Peers == nil {
		return ""
	}
	for _, p := range a.f.Peers.Peers {
		for _, pa := range p.Addresses {
			if pa.Addr.WithZone("") == x.WithZone("") {
				return pa.Route
			}
		}
	}
	return ""
}

// peerDropsTCP: the peer answers ARP at the address (it is there), and a
// TCP connect gets no answer, not even a refusal: something drops it.
func (a *analysis) peerDropsTCP(p PeerReach, d DialResult, neigh, pk string) {
	name := Printable(p.Name)
	target, _ := netip.ParseAddrPort(d.Target)
	a.add(Finding{ID: "peer-drops-tcp", Severity: SevWarn, Step: StepPeerReach, Cause: CausePeerFilter,
		Text: fmt.Sprintf("%s answers ARP at %s (%s), but TCP to its port %d gets no answer, not even a refusal: a firewall on that device (or on the path) drops inbound TCP to it",
			name, target.Addr(), neigh, target.Port()),
		Hint:  fmt.Sprintf("allow TCP port %d on %s (nft, ufw or firewalld); run 'pairing diag' there", target.Port(), name),
		Facts: []string{pk + ".dials " + d.Target, pk + ".neighbours " + target.Addr().String()}})
}

// prober finds who gave a proof: a peer found now, or one the daemon
// knows, with its addresses.
func (a *analysis) prober(id string) (string, []netip.Addr) {
	if a.f.Peers != nil {
		for _, p := range a.f.Peers.Peers {
			if p.ID == id {
				var as []netip.Addr
				for _, x := range p.Addresses {
					as = append(as, x.Addr)
				}
				return p.Name, as
			}
		}
	}
	if d := a.f.Daemon; d != nil && d.Status != nil {
		for _, p := range d.Status.Peers {
			if p.ID == id {
				return p.Name, p.Addresses
			}
		}
	}
	if a.f.Paired != nil {
		for _, p := range a.f.Paired.Devices {
			if p.ID == id {
				return p.Name, p.Addresses
			}
		}
	}
	if x, err := netip.ParseAddr(id); err == nil {
		return id, []netip.Addr{x}
	}
	return id, nil
}

func concludeReached(a *analysis) {
	r := a.f.Reached
	if r == nil {
		return
	}
	if r.Skipped != "" || r.Error != "" || len(r.Addresses) == 0 {
		a.skip[StepReached] = orText(r.Skipped, orText(r.Error, "the daemon has no address"))
		return
	}
	var reached []string
	for i, ad := range r.Addresses {
		for _, p := range ad.Proofs {
			key := fact(StepReached, "addresses", fmt.Sprintf("%d.proofs %s", i, p.Kind))
			switch p.Kind {
			case discovery.ProofReached:
				reached = append(reached, fmt.Sprintf("%s by %s (%s, %s ago)", ad.IP, Printable(p.By), p.Via, time.Since(p.At).Round(time.Second)))
			case discovery.ProofUnreached:
				a.notReached(ad.IP, ad.Interface, r.Port, p.By, p.Trust, p.Detail, key)
			}
		}
	}
	best := r.Addresses[0]
	a.summary[StepReached] = fmt.Sprintf("the QR code leads with %s on %s: %s", best.IP, best.Interface, best.RankReason)
	if len(reached) > 0 {
		a.summary[StepReached] += "; reached: " + strings.Join(reached, ", ")
	} else if !strings.Contains(best.RankReason, "reached") {
		a.summary[StepReached] += "; no other host has connected yet"
	}
}

// notReached concludes on one peer's report that it could not connect to
// our address: a host filter only with positive evidence.
func (a *analysis) notReached(ip netip.Addr, ifname string, port int, by, trust, outcome, key string) {
	name, addrs := a.prober(by)
	name = Printable(name)
	shares := slices.ContainsFunc(addrs, func(x netip.Addr) bool { return a.sharesLink(ip, ifname, x) })
	trusted := trust == discovery.TrustPaired || trust == discovery.TrustPairing
	kind := "a link"
	if in, ok := a.f.Interfaces.byName(ifname); ok {
		kind = label(in)
	}
	filter := ""
	if v, ok := a.hostDropsOn("tcp", port, ifname); ok {
		filter = fmt.Sprintf(" (%s chain %s drops it)", v.Table, v.Chain)
	}
	what := fmt.Sprintf("%s could not reach %s on %s (%s): %s", name, ip, ifname, kind, outcome)
	switch {
	case shares && outcome == discovery.ProbeProhibited,
		shares && outcome == discovery.ProbeRefused,
		shares && trusted && outcome == discovery.ProbeTimeout,
		shares && filter != "":
		evidence := map[string]string{
			discovery.ProbeProhibited: "an ICMP administratively prohibited answered",
			discovery.ProbeRefused:    "a reset answered while the daemon listens on that port",
			discovery.ProbeTimeout:    strings.TrimSpace("a "+trust) + " device on the same link got no answer while the self-ping passes",
		}[outcome]
		a.add(Finding{ID: "host-filter-inbound", Severity: SevWarn, Step: StepReached, Cause: CauseHostFilter,
			Text:  what + ": " + orText(evidence, "this host's filter matches") + filter,
			Hint:  fmt.Sprintf("a firewall on this host drops inbound TCP on %s (a rule on the input interface, which the self-ping over loopback never meets): allow TCP port %d there (nft, ufw or firewalld)", ifname, port),
			Facts: []string{key, fact(StepInterfaces, "interfaces", ifname)}})
	case !shares:
		a.add(Finding{ID: "not-reached-other-link", Severity: SevInfo, Step: StepReached,
			Text:  what + ": expected, " + name + " is not on that link, so this says nothing about a filter",
			Facts: []string{key, fact(StepInterfaces, "interfaces", ifname)}})
	default:
		a.add(Finding{ID: "not-reached-unconfirmed", Severity: SevInfo, Step: StepReached,
			Text:  what + fmt.Sprintf(": one report of a %s device, not enough to blame a filter", orText(trust, "stranger")),
			Hint:  "if phones cannot open the QR code's address either, check this host's firewall for TCP port " + fmt.Sprint(port),
			Facts: []string{key}})
	}
}
