package diag

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
)

// The rules about other devices: paired devices, peers found, their
// reachability, mDNS, and what other hosts said about our addresses.

func (a *analysis) paired() {
	p := a.f.Paired
	if p == nil {
		return
	}
	if len(p.Devices) == 0 {
		a.skip[StepPaired] = "no paired devices"
		return
	}
	var ok, bad []string
	for i, d := range p.Devices {
		if d.Reachable {
			ok = append(ok, Printable(d.Name))
			continue
		}
		bad = append(bad, Printable(d.Name))
		for _, dl := range d.Dials {
			if dl.Outcome == DialProhibited {
				a.add(Finding{ID: "paired-prohibited", Severity: SevWarn, Step: StepPaired, Cause: CausePeerFilter,
					Text:  fmt.Sprintf("%s rejects TCP at %s with %s: a packet filter refuses the pairing port", Printable(d.Name), dl.Target, dl.Error),
					Hint:  "allow the pairing port on that device (firewalld: firewall-cmd --add-port=PORT/tcp)",
					Facts: []string{fact(StepPaired, "devices", fmt.Sprintf("%d.dials %s", i, dl.Target))}})
			}
		}
	}
	a.summary[StepPaired] = fmt.Sprintf("%d of %d reachable", len(ok), len(p.Devices))
	if len(bad) > 0 {
		a.add(Finding{ID: "paired-unreachable", Severity: SevWarn, Step: StepPaired, Text: "not reachable now: " + strings.Join(bad, ", "),
			Hint:  "those devices are off or away, or their address changed (they are found again by discovery when they come back)",
			Facts: []string{fact(StepPaired, "devices", "")}})
	}
}

// qrWorks reports whether pairing by QR code can work: an address on a
// LAN link reaches our listener, and the daemon (when it runs) has one.
func (a *analysis) qrWorks() bool {
	s := a.f.SelfReach
	if s == nil {
		return false
	}
	return slices.ContainsFunc(s.Found, func(ad discovery.Address) bool {
		in, ok := a.f.Interfaces.byName(ad.Interface)
		return ok && in.Class == discovery.ClassLAN && in.Carrier
	})
}

func (a *analysis) peers() {
	p := a.f.Peers
	if p == nil {
		return
	}
	key := fact(StepPeers, "peers", "")
	var names, heard []string
	for _, x := range p.Peers {
		if x.Heard == "query" {
			names = append(names, fmt.Sprintf("%s (sees us as %s)", Printable(x.Name), orText(addrText(x.SeenAs), "?")))
		} else {
			ago := "earlier"
			if a.f.Clock != nil && !x.LastSeen.IsZero() {
				ago = a.f.Clock.Now.Sub(x.LastSeen).Round(time.Second).String() + " ago"
			}
			heard = append(heard, fmt.Sprintf("%s (by %s, %s)", Printable(x.Name), strings.Join(x.Sources, " and "), ago))
		}
	}
	if len(names) > 0 {
		a.summary[StepPeers] = plural(len(names), "peer", "peers") + ": " + strings.Join(names, ", ")
		a.peerSources()
		return
	}
	if p.Error != "" {
		a.add(Finding{ID: "discovery-cannot-ask", Severity: SevWarn, Step: StepPeers, Text: p.Error,
			Hint: "no interface can send a discovery query; pairing by QR code does not need it", Facts: []string{fact(StepPeers, "error", "")}})
		return
	}
	// Nobody answered. What do the facts say?
	if v, ok := a.hostDrops("udp", beacon.DefaultPort); ok {
		a.add(Finding{ID: "no-peers-host-filter", Severity: SevWarn, Step: StepPeers, Cause: CauseHostFilter,
			Text:  fmt.Sprintf("no other device answered: this host's own packet filter drops the answers (%s chain %s drops %s)", v.Table, v.Chain, v.Packet),
			Hint:  "see the packet filter step; pairing by QR code does not need discovery",
			Facts: []string{key, fact(StepFilter, "verdicts", v.Packet)}})
		return
	}
	if a.f.Paired != nil {
		for i, d := range a.f.Paired.Devices {
			if !d.Reachable {
				continue
			}
			pk := fact(StepPaired, "devices", fmt.Sprint(i))
			if link := a.f.Interfaces.linkOf(d.At); link == "" {
				a.add(Finding{ID: "paired-off-link", Severity: SevWarn, Step: StepPeers, Cause: CauseRouter,
					Text:  fmt.Sprintf("%s answers at %s, on another subnet (the kernel routes it through a gateway), and no device answered discovery", Printable(d.Name), d.At),
					Hint:  "beacons stay on their link and no mDNS reflector carries discovery here: discovery does not cross routers on this network — pair with the QR code or a typed address ('pairing join URL'); paired devices still connect by their stored address",
					Facts: []string{key, pk}})
				return
			}
			a.add(Finding{ID: "no-multicast-from-peer", Severity: SevWarn, Step: StepPeers,
				Text: fmt.Sprintf("no multicast received from any peer while unicast to %s (%s, on this link) works", Printable(d.Name), d.At),
				Hint: fmt.Sprintf("%s runs and is on this link, but neither its beacon nor its mDNS answer arrived: multicast is lost between the two — a switch or access point that filters it (IGMP snooping without a querier), or a filter on %s dropping UDP %d and 5353 (this host's filter lets them in). Pair with the QR code, which carries the address",
					Printable(d.Name), Printable(d.Name), beacon.DefaultPort),
				Facts: []string{key, pk, fact(StepFilter, "verdicts", "")}})
			return
		}
	}
	if len(heard) > 0 {
		a.add(Finding{ID: "heard-not-answering", Severity: SevWarn, Step: StepPeers,
			Text:  "no device answered this query, but the daemon heard " + list(heard) + ": their announcements came, their answers to this query did not",
			Hint:  "see peer reachability for what unicast to them meets; pairing by QR code does not need discovery",
			Facts: []string{key, fact(StepDaemon, "status.peers", "")}})
		return
	}
	// Is a reflector carrying mDNS from elsewhere? (Then Peers would
	// have it too; nothing to add.) Who else is on the LAN?
	var others []string
	var nfacts []string
	if n := a.f.Neighbours; n != nil {
		for _, e := range n.Entries {
			if neighbourAnswered(e.State) && !a.isGateway(e.Addr) && !e.Addr.IsLinkLocalUnicast() {
				others = append(others, e.Addr.String())
				nfacts = append(nfacts, fact(StepNeighbours, "entries", e.Addr.String()))
			}
		}
	}
	text := "no other device answered discovery (beacon or mDNS): discovery between computers cannot be checked here"
	if len(others) > 0 {
		text += fmt.Sprintf("; %s on this LAN (%s) answered ARP but not discovery (a phone, a printer, or a computer without 'pairing serve')", plural(len(others), "other device", "other devices"), strings.Join(others, ", "))
	}
	hint := "pairing by QR code does not need discovery: scan 'pairing qr' with the phone. To pair with another computer: is 'pairing serve' running on the other device? Then run 'pairing diag' there too"
	if gws := a.gatewaysAnswering(); len(gws) > 0 && a.f.Paired != nil && slices.ContainsFunc(a.f.Paired.Devices, func(d PairedProbe) bool { return !d.Reachable && a.onLinkAny(d.Addresses) }) {
		hint += fmt.Sprintf(". The gateway %s answers while paired devices on this link do not: they are off or away, or the network isolates its clients (guest Wi-Fi; if so, turn client isolation off on the access point)", strings.Join(gws, ", "))
	}
	a.add(Finding{ID: "no-peers", Severity: SevWarn, Step: StepPeers, Text: text, Hint: hint, Facts: append([]string{key, fact(StepMulticast, "results", "")}, nfacts...)})
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (a *analysis) isGateway(x netip.Addr) bool {
	if a.f.Routes == nil {
		return false
	}
	return slices.ContainsFunc(a.f.Routes.Defaults, func(d RouteEntry) bool { return d.Gateway == x })
}

func (a *analysis) gatewaysAnswering() []string {
	var out []string
	if a.f.Peers != nil {
		for _, g := range a.f.Peers.Gateways {
			if g.Answers() {
				out = append(out, g.Addr.String())
			}
		}
	}
	return out
}

func (a *analysis) onLinkAny(as []netip.Addr) bool {
	return slices.ContainsFunc(as, func(x netip.Addr) bool { return a.f.Interfaces.linkOf(x) != "" })
}

// peerSources concludes on peers seen by one source only.
func (a *analysis) peerSources() {
	for i, x := range a.f.Peers.Peers {
		key := fact(StepPeers, "peers", fmt.Sprintf("%d.sources", i))
		if len(x.Sources) != 1 || x.Heard != "query" {
			continue
		}
		switch x.Sources[0] {
		case discovery.SourceMDNS:
			if !x.OnLink() {
				a.add(Finding{ID: "mdns-reflector", Severity: SevInfo, Step: StepPeers,
					Text:  fmt.Sprintf("%s is found by mDNS at %s, off our subnets: an mDNS reflector on the router carries discovery across (beacons stay on their link)", Printable(x.Name), peerAddrs(x.Addresses)),
					Facts: []string{key, fact(StepPeers, "peers", fmt.Sprintf("%d.addresses", i))}})
				continue
			}
			if v, ok := a.hostDrops("udp", beacon.DefaultPort); ok {
				a.add(Finding{ID: "beacon-host-filter", Severity: SevWarn, Step: StepPeers, Cause: CauseHostFilter,
					Text: fmt.Sprintf("found by mDNS but not by beacon: %s; this host's packet filter drops %s (%s chain %s)", Printable(x.Name), v.Packet, v.Table, v.Chain),
					Hint: "see the packet filter step", Facts: []string{key, fact(StepFilter, "verdicts", v.Packet)}})
				continue
			}
			a.add(Finding{ID: "mdns-only", Severity: SevWarn, Step: StepPeers, Text: "found by mDNS but not by beacon: " + Printable(x.Name),
				Hint:  fmt.Sprintf("its answer to the beacon (UDP %d) did not arrive: the port is filtered on the way or on that device, or it runs an older pairing", beacon.DefaultPort),
				Facts: []string{key}})
		case discovery.SourceBeacon:
			if v, ok := a.hostDrops("udp", 5353); ok {
				a.add(Finding{ID: "mdns-host-filter", Severity: SevWarn, Step: StepPeers, Cause: CauseHostFilter,
					Text: fmt.Sprintf("found by beacon but not by mDNS: %s; this host's packet filter drops %s (%s chain %s)", Printable(x.Name), v.Packet, v.Table, v.Chain),
					Hint: "see the packet filter step", Facts: []string{key, fact(StepFilter, "verdicts", v.Packet)}})
				continue
			}
			a.add(Finding{ID: "beacon-only", Severity: SevWarn, Step: StepPeers, Text: "found by beacon but not by mDNS: " + Printable(x.Name),
				Hint:  "its mDNS answer (UDP 5353) did not arrive: mDNS is filtered on the way or on that device, or it runs with mDNS off",
				Facts: []string{key}})
		}
	}
}

func peerAddrs(as []PeerAddr) string {
	var out []string
	for _, x := range as {
		out = append(out, x.Addr.String())
	}
	return strings.Join(out, ", ")
}

func (a *analysis) peerReach() {
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
		case d.Outcome == DialTimeout && link != "" && (neigh == "FAILED" || neigh == "INCOMPLETE") && len(a.gatewaysAnswering()) > 0 && found != nil && slices.Contains(found.Sources, discovery.SourceBeacon):
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

func (a *analysis) mdns() {
	m := a.f.MDNS
	if m == nil {
		return
	}
	var sum []string
	if len(m.Responders) > 0 {
		sum = append(sum, "port 5353 held by "+strings.Join(m.Responders, ", "))
	} else {
		sum = append(sum, "no mDNS responder on this host")
	}
	if m.OwnVisible != nil {
		sum = append(sum, map[bool]string{true: "our service is visible", false: "our service is not visible"}[*m.OwnVisible])
	}
	var offLink []string
	for i, p := range m.Found {
		if !p.OnLink {
			offLink = append(offLink, fmt.Sprintf("%s at %s", Printable(p.Name), peerAddrs(p.Addresses)))
			_ = i
		}
	}
	if len(m.Found) > 0 {
		sum = append(sum, plural(len(m.Found), "other service", "other services")+" found")
	}
	a.summary[StepMDNS] = strings.Join(sum, "; ")
	if len(offLink) > 0 {
		a.add(Finding{ID: "mdns-crosses-router", Severity: SevInfo, Step: StepMDNS,
			Text:  "found by mDNS off our subnets: " + strings.Join(offLink, ", ") + ": discovery crosses via an mDNS reflector on the router",
			Facts: []string{fact(StepMDNS, "found", "")}})
	}
	switch {
	case m.JoinError != "":
		a.add(Finding{ID: "mdns-port", Severity: SevWarn, Step: StepMDNS, Text: fmt.Sprintf("cannot join 224.0.0.251:5353 on %s: %s", m.JoinInterface, m.JoinError),
			Hint: "mDNS cannot work on this host; discovery still has the beacon, and the QR code carries the address", Facts: []string{fact(StepMDNS, "join_error", "")}})
	case m.OwnVisible != nil && !*m.OwnVisible:
		if v, ok := a.hostDrops("udp", 5353); ok {
			a.add(Finding{ID: "mdns-own-host-filter", Severity: SevWarn, Step: StepMDNS, Cause: CauseHostFilter,
				Text: fmt.Sprintf("the daemon's _pairing._tcp service does not answer: this host's packet filter drops %s (%s chain %s)", v.Packet, v.Table, v.Chain),
				Hint: "see the packet filter step", Facts: []string{fact(StepMDNS, "own_service_visible", ""), fact(StepFilter, "verdicts", v.Packet)}})
			return
		}
		a.add(Finding{ID: "mdns-own-invisible", Severity: SevWarn, Step: StepMDNS, Text: "the daemon's _pairing._tcp service does not answer",
			Hint: "the daemon runs with mDNS off (--no-mdns, mdns = false), or it has no confirmed address yet", Facts: []string{fact(StepMDNS, "own_service_visible", "")}})
	}
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

func (a *analysis) reached() {
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
