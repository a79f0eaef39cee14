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

func concludePaired(a *analysis) {
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

func concludePeers(a *analysis) {
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
		concludePeerSources(a)
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
			if neighbourAnswered(e.State) && !isGateway(a, e.Addr) && !e.Addr.IsLinkLocalUnicast() {
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
	if gws := a.gatewaysAnswering(); len(gws) > 0 && a.f.Paired != nil && slices.ContainsFunc(a.f.Paired.Devices, func(d PairedProbe) bool { return !d.Reachable && onLinkAny(a, d.Addresses) }) {
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

func isGateway(a *analysis, x netip.Addr) bool {
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

func onLinkAny(a *analysis, as []netip.Addr) bool {
	return slices.ContainsFunc(as, func(x netip.Addr) bool { return a.f.Interfaces.linkOf(x) != "" })
}

// peerSources concludes on peers seen by one source only.
func concludePeerSources(a *analysis) {
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
				Hint:  fmt.Sprintf("its answer to the beacon (UDP %d, sent by unicast) did not arrive while its mDNS answer did: unicast from it is filtered on the way or on that device (see peer reachability), or it runs an older pairing", beacon.DefaultPort),
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

func concludeMDNS(a *analysis) {
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
