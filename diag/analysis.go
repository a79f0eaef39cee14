package diag

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lanpairing/pairing/discovery"
)

// The rules of the analysis for the host's own state: interfaces, the
// daemon, routes, the packet filter, the own addresses, multicast,
// WebRTC, the neighbour tables and the clock. Rules about other devices
// are in conclusions.go.

func concludeInterfaces(a *analysis) {
	f := a.f.Interfaces
	if f == nil {
		return
	}
	if f.Error != "" {
		a.add(Finding{ID: "interfaces-unreadable", Severity: SevFail, Step: StepInterfaces, Text: f.Error, Facts: []string{fact(StepInterfaces, "error", "")}})
		return
	}
	var up, down, idle, noCarrier []string
	var facts []string
	for _, in := range f.Interfaces {
		if in.Class == discovery.ClassLoopback {
			continue
		}
		var addrs []string
		lan := false
		for _, p := range in.Addrs {
			addrs = append(addrs, p.String())
			lan = lan || !p.Addr().IsLinkLocalUnicast()
		}
		switch {
		case in.Up && in.Carrier && len(in.Addrs) > 0:
			up = append(up, fmt.Sprintf("%s %v (%s)", in.Name, addrs, label(in)))
		case in.Up && !in.Carrier && lan && in.Class == discovery.ClassLAN:
			noCarrier = append(noCarrier, fmt.Sprintf("%s (%s)", in.Name, strings.Join(addrs, ", ")))
			facts = append(facts, fact(StepInterfaces, "interfaces", in.Name+".carrier"))
			down = append(down, in.Name)
		case in.Up && !in.Carrier:
			idle = append(idle, in.Name) // a bridge without a container, a tunnel not connected
		default:
			down = append(down, in.Name)
		}
	}
	switch {
	case len(up) == 0 && len(down) > 0:
		a.add(Finding{ID: "no-interface-up", Severity: SevFail, Step: StepInterfaces,
			Text: fmt.Sprintf("no interface is up with an address (down or no carrier: %s)", strings.Join(down, ", ")),
			Hint: "connect to the network: plug the cable in or join the Wi-Fi (ip link set " + down[0] + " up)", Facts: []string{fact(StepInterfaces, "interfaces", "")}})
	case len(up) == 0:
		a.add(Finding{ID: "only-loopback", Severity: SevFail, Step: StepInterfaces, Text: "only loopback is up",
			Hint: "this device has no network interface: connect it to the LAN", Facts: []string{fact(StepInterfaces, "interfaces", "")}})
	default:
		a.summary[StepInterfaces] = strings.Join(up, "; ")
		if len(down) > 0 {
			a.summary[StepInterfaces] += "; down: " + strings.Join(down, ", ")
		}
		if len(idle) > 0 {
			a.summary[StepInterfaces] += "; up without carrier: " + strings.Join(idle, ", ")
		}
		if len(noCarrier) > 0 {
			a.add(Finding{ID: "no-carrier", Severity: SevWarn, Step: StepInterfaces, Text: "no carrier on " + strings.Join(noCarrier, "; "),
				Hint:  "the cable is out or the Wi-Fi is gone on that interface, but it keeps its address: pairing does not offer that address first; plug it in or take the interface down",
				Facts: facts})
		}
	}
}

// label is how the report names an interface's kind: its class where
// that is not the LAN (virtual, vpn), else the kernel's kind.
func label(in Interface) string {
	switch in.Class {
	case discovery.ClassVirtual:
		return "virtual"
	case discovery.ClassTunnel:
		return "vpn"
	}
	return in.Kind
}

func concludeDaemon(a *analysis) {
	d := a.f.Daemon
	if d == nil {
		return
	}
	if d.Status == nil {
		facts := []string{fact(StepDaemon, "tried", "")}
		var self []string
		if a.f.Peers != nil {
			for i, p := range a.f.Peers.Self {
				if strings.HasPrefix(p.Why, "every address") {
					self = append(self, fmt.Sprintf("%s (%s)", Printable(p.Name), p.ID))
					facts = append(facts, fact(StepPeers, "self", fmt.Sprint(i)))
				}
			}
		}
		switch {
		case d.NotAllowed:
			a.add(Finding{ID: "daemon-not-allowed", Severity: SevWarn, Step: StepDaemon, Text: "a pairing daemon runs, but this user may not use its control socket",
				Hint: "run diag as root, or join the daemon's group (sudo usermod -aG pairing $USER, then log in again)", Facts: facts})
		case len(self) > 0:
			a.add(Finding{ID: "daemon-elsewhere", Severity: SevWarn, Step: StepDaemon,
				Text: fmt.Sprintf("no daemon answers at %s, but a pairing daemon runs on this host: %s answered discovery from this host's own addresses", d.Socket, list(self)),
				Hint: "it uses another control socket (started with --socket or another PAIRING_SOCKET): run diag with --socket PATH, or set PAIRING_SOCKET to the daemon's", Facts: facts})
		default:
			a.add(Finding{ID: "no-daemon", Severity: SevFail, Step: StepDaemon, Text: orText(d.Error, "no pairing daemon is running"),
				Hint: "start the daemon: sudo systemctl start pairing (or pairing serve); without it this device cannot be found or paired", Facts: facts})
		}
		return
	}
	st := d.Status
	var as []string
	for _, ad := range st.Addresses {
		as = append(as, ad.IP.String())
	}
	win := "closed"
	if st.Window.Open {
		win = "open"
	}
	a.summary[StepDaemon] = fmt.Sprintf("%s (%s) up %s, port %d, addresses %s, window %s, %s seen, %d of %d paired online",
		Printable(st.Name), st.ID, time.Duration(st.UptimeS)*time.Second, st.Port, orText(strings.Join(as, " "), "none"), win,
		plural(len(st.Peers), "device", "devices"), st.PairedOnline, st.Paired)
	if d.FoundAt != d.Socket {
		a.add(Finding{ID: "daemon-other-socket", Severity: SevInfo, Step: StepDaemon,
			Text: fmt.Sprintf("the daemon answers at %s, not at %s", d.FoundAt, d.Socket),
			Hint: "other commands need --socket " + d.FoundAt + " (or PAIRING_SOCKET) to reach it", Facts: []string{fact(StepDaemon, "found_at", "")}})
	}
	if len(st.Addresses) == 0 {
		a.add(Finding{ID: "daemon-no-address", Severity: SevWarn, Step: StepDaemon, Text: "the daemon has no reachable address",
			Hint: "see the address steps for why; peers can still confirm one (observed)", Facts: []string{fact(StepDaemon, "status.addresses", "")}})
	}
}

// lookups are the route lookups of one purpose.
func (f *RouteFacts) lookups(purpose string) []RouteLookup {
	var out []RouteLookup
	for _, l := range f.Lookups {
		if l.Purpose == purpose {
			out = append(out, l)
		}
	}
	return out
}

func concludeRoutes(a *analysis) {
	r := a.f.Routes
	if r == nil {
		return
	}
	var parts []string
	for _, d := range r.Defaults {
		if d.Gateway.IsValid() {
			parts = append(parts, fmt.Sprintf("default via %s dev %s (table %s)", d.Gateway, d.Interface, d.Table))
		} else {
			parts = append(parts, fmt.Sprintf("default dev %s (table %s)", d.Interface, d.Table))
		}
	}
	outside := ""
	for _, l := range r.lookups(LookupOutside) {
		if l.Interface == "" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s leaves by %s (table %s)", l.Dst, l.Interface, l.Table))
		key := fact(StepRoutes, "lookups", "outside "+l.Dst)
		switch {
		case l.Class == discovery.ClassTunnel || l.Table != "main" && l.Table != "":
			if outside == "" {
				outside = l.Interface
				a.vpnDefault(l, key)
			}
		case l.LinkDown || a.noCarrier(l.Interface):
			a.add(Finding{ID: "default-linkdown", Severity: SevWarn, Step: StepRoutes,
				Text:  fmt.Sprintf("the default route leaves by %s, which has no carrier (linkdown)", l.Interface),
				Hint:  "the cable is out or the Wi-Fi is gone on " + l.Interface + "; pairing ranks its address last and uses another link",
				Facts: []string{key}})
		}
	}
	a.summary[StepRoutes] = strings.Join(parts, "; ")
	if len(r.Defaults) == 0 && !slices.ContainsFunc(r.lookups(LookupOutside), func(l RouteLookup) bool { return l.Interface != "" }) {
		a.add(Finding{ID: "no-default-route", Severity: SevWarn, Step: StepRoutes, Text: "no default route",
			Hint: "fine on an isolated LAN (no internet): pairing finds the LAN address with the interface sweep", Facts: []string{fact(StepRoutes, "defaults", "")}})
	}
	// The LAN's own prefixes: does the kernel send them by their link?
	stolen := map[string]bool{}
	for _, l := range append(r.lookups(LookupTunnel), r.lookups(LookupLAN)...) {
		if l.Interface == "" || l.Interface == l.Expect || stolen[l.Of] {
			continue
		}
		stolen[l.Of] = true
		key := fact(StepRoutes, "lookups", l.Purpose+" "+l.Dst)
		if l.Class == discovery.ClassTunnel {
			what := "part of the LAN"
			if l.Purpose == LookupTunnel {
				what = "the VPN route " + l.Of + ", more specific than the LAN's,"
			}
			a.add(Finding{ID: "vpn-steals-lan", Severity: SevWarn, Step: StepRoutes, Cause: CauseVPN,
				Text:  fmt.Sprintf("the kernel sends %s to %s through %s, not %s: %s takes devices of the LAN", l.Dst, orText(lanOf(l), "the LAN"), l.Interface, l.Expect, what),
				Hint:  "devices in that range are reached through the VPN, not the LAN: allow LAN access in the VPN (split tunnelling), or remove the route while pairing",
				Facts: []string{key, fact(StepRoutes, "tunnel_routes", "")}})
			continue
		}
		a.add(Finding{ID: "lan-other-link", Severity: SevWarn, Step: StepRoutes,
			Text:  fmt.Sprintf("the kernel sends %s (in %s) by %s, not by %s", l.Dst, l.Of, l.Interface, l.Expect),
			Hint:  "two links claim the same addresses: devices on " + l.Expect + " may be unreachable; give each link its own subnet",
			Facts: []string{key}})
	}
	// A tunnel route broader than a LAN prefix: the LAN's own route is
	// more specific and wins (the kernel's lookups above say so).
	for _, t := range r.Tunnels {
		for _, p := range lanPrefixes(a.f.Interfaces) {
			if t.Prefix.Bits() == 0 || t.Prefix.Bits() >= p.Prefix.Bits() || !t.Prefix.Contains(p.Prefix.Addr()) || stolen[fmt.Sprintf("%s on %s", p.Prefix.Masked(), p.Interface)] {
				continue
			}
			a.add(Finding{ID: "vpn-route-covers-lan", Severity: SevInfo, Step: StepRoutes, Cause: CauseVPN,
				Text: fmt.Sprintf("the VPN route %s via %s covers the LAN %s, but the LAN's own route is more specific: the kernel sends LAN traffic by %s",
					t.Prefix, t.Interface, p.Prefix.Masked(), p.Interface),
				Facts: []string{fact(StepRoutes, "tunnel_routes", t.Prefix.String()), fact(StepRoutes, "lookups", "lan "+p.Prefix.Masked().String())}})
		}
	}
}

func lanOf(l RouteLookup) string {
	if l.Purpose == LookupLAN {
		return l.Of
	}
	return ""
}

func (a *analysis) noCarrier(ifname string) bool {
	in, ok := a.f.Interfaces.byName(ifname)
	return ok && !in.Carrier
}

// vpnDefault concludes on a tunnel that holds the default route: what it
// does to the QR code, and whether the LAN is affected.
func (a *analysis) vpnDefault(l RouteLookup, key string) {
	facts := []string{key}
	why := "the kernel's lookup"
	if l.Table != "main" && l.Table != "" {
		why = fmt.Sprintf("policy routing sends it through table %s (a VPN's fwmark rules, as wg-quick sets up)", l.Table)
		facts = append(facts, fact(StepRoutes, "rules", ""))
	}
	const sev = SevWarn
	qr := "pairing ranks the VPN's address last, so the QR code leads with a LAN address"
	if d := a.f.Daemon; d != nil && d.Status != nil && len(d.Status.Addresses) > 0 {
		best := d.Status.Addresses[0]
		facts = append(facts, fact(StepDaemon, "status.addresses", "0"))
		if best.Interface == l.Interface {
			qr = fmt.Sprintf("the QR code's first address %s is the VPN's (%s): phones on the LAN cannot reach it; take the VPN down while pairing, or pair from a computer with 'pairing join'", best.IP, l.Interface)
		} else {
			qr = fmt.Sprintf("the QR code is not affected: it leads with %s on %s, not the VPN's address", best.IP, best.Interface)
		}
	}
	lan := ""
	if lans := a.f.Routes.lookups(LookupLAN); len(lans) > 0 && !slices.ContainsFunc(lans, func(x RouteLookup) bool { return x.Interface != x.Expect }) {
		lan = "; LAN traffic stays on the LAN (" + lans[0].Of + ")"
		facts = append(facts, fact(StepRoutes, "lookups", "lan"))
	}
	a.add(Finding{ID: "vpn-default-route", Severity: sev, Step: StepRoutes, Cause: CauseVPN,
		Text:  fmt.Sprintf("a VPN or tunnel holds the default route: outside traffic leaves by %s (%s)", l.Interface, why),
		Hint:  qr + lan,
		Facts: facts})
}

func concludePreferred(a *analysis) {
	p := a.f.Preferred
	if p == nil {
		return
	}
	if len(p.Found) > 0 {
		var as []string
		for _, ad := range p.Found {
			as = append(as, fmt.Sprintf("%s on %s", ad.IP, ad.Interface))
			if in, ok := a.f.Interfaces.byName(ad.Interface); ok && (in.Class != discovery.ClassLAN || !in.Carrier) {
				a.add(Finding{ID: "preferred-demoted", Severity: SevWarn, Step: StepPreferred,
					Text:  fmt.Sprintf("the preferred address %s is on %s (%s%s)", ad.IP, ad.Interface, label(in), map[bool]string{false: ", no carrier"}[in.Carrier]),
					Hint:  "the default route leaves by a link phones on the LAN cannot reach: pairing ranks that address last, and the QR code leads with a LAN address (see self-reachability)",
					Facts: []string{fact(StepPreferred, "found", ad.IP.String()), fact(StepInterfaces, "interfaces", ad.Interface)}})
			}
		}
		a.summary[StepPreferred] = "confirmed " + strings.Join(as, ", ")
		return
	}
	key := fact(StepPreferred, "routes", "")
	switch {
	case p.NotAddressable:
		port := 0
		if a.f.SelfReach != nil {
			port = a.f.SelfReach.Port
		}
		a.add(Finding{ID: "preferred-dropped", Severity: SevFail, Step: StepPreferred, Cause: CauseHostFilter,
			Text:  p.Error,
			Hint:  fmt.Sprintf("inbound TCP to the preferred address on port %d did not arrive while bind worked, and a connection to an own address never leaves this host: a firewall on this host drops it — allow the port (or the pairing daemon's port)", port),
			Facts: []string{key}})
	case p.NoRoute || p.Error != "":
		a.add(Finding{ID: "preferred-no-route", Severity: SevWarn, Step: StepPreferred, Text: p.Error,
			Hint:  "no route to the outside (fine on an isolated LAN): the outbound address is unknown, and the interface sweep (self-reachability) finds the LAN address",
			Facts: []string{key}})
	}
}

func concludeListener(a *analysis) {
	l := a.f.Listener
	if l == nil {
		return
	}
	if l.BindError != "" {
		a.add(Finding{ID: "no-listener", Severity: SevFail, Step: StepListener, Text: "cannot bind a TCP listener: " + l.BindError,
			Hint: "another program holds the ports, or the system is out of resources", Facts: []string{fact(StepListener, "bind_error", "")}})
		return
	}
	a.summary[StepListener] = fmt.Sprintf("bound TCP port %d for the self-pings", l.DiagPort)
	if l.DaemonPort > 0 {
		a.summary[StepListener] += fmt.Sprintf("; the daemon listens on %d", l.DaemonPort)
	}
}

func concludeSelfReach(a *analysis) {
	s := a.f.SelfReach
	if s == nil {
		return
	}
	key := fact(StepSelfReach, "candidates", "")
	if len(s.Found) == 0 {
		if s.NoCandidates {
			a.add(Finding{ID: "no-candidates", Severity: SevFail, Step: StepSelfReach, Text: s.Error,
				Hint: "no private, link-local or ULA address on any interface that is up: connect to the LAN", Facts: []string{key}})
			return
		}
		a.add(Finding{ID: "self-reach-none", Severity: SevFail, Step: StepSelfReach, Cause: CauseHostFilter, Text: s.Error,
			Hint:  fmt.Sprintf("no address of this device reaches its own listener, and such a connection never leaves the host: a firewall on this host drops inbound TCP (port %d here) — allow it", s.Port),
			Facts: []string{key}})
		return
	}
	var as, bad []string
	for _, ad := range s.Found {
		as = append(as, ad.IP.String())
	}
	for _, c := range s.Candidates {
		if c.Result != "confirmed" {
			bad = append(bad, c.IP)
		}
	}
	a.summary[StepSelfReach] = "reachable: " + strings.Join(as, ", ")
	if len(bad) > 0 {
		a.add(Finding{ID: "self-reach-some", Severity: SevWarn, Step: StepSelfReach, Cause: CauseHostFilter,
			Text:  fmt.Sprintf("%d of %d addresses do not reach the listener: %s", len(bad), len(s.Candidates), strings.Join(bad, ", ")),
			Hint:  "a firewall drops inbound TCP on some addresses (on this host: the self-ping never leaves it); the QR code uses the reachable ones",
			Facts: []string{key}})
	}
}

func concludeMulticast(a *analysis) {
	m := a.f.Multicast
	if m == nil {
		return
	}
	key := fact(StepMulticast, "results", "")
	var ok, bad []string
	joined := false
	for _, x := range m.Results {
		joined = joined || x.Joined && x.Sent
		if x.Received {
			ok = append(ok, x.Interface+"/"+x.Family)
		} else {
			bad = append(bad, fmt.Sprintf("%s/%s (%s)", x.Interface, x.Family, orText(x.Error, "no loopback")))
		}
	}
	drop, dropped := a.hostDrops("udp", m.Port)
	switch {
	case len(ok) == 0 && dropped && joined:
		a.add(Finding{ID: "multicast-host-filter", Severity: SevWarn, Step: StepMulticast, Cause: CauseHostFilter,
			Text: fmt.Sprintf("multicast is sent but does not come back: this host's packet filter drops UDP %d (%s chain %s)", m.Port, drop.Table, drop.Chain),
			Hint: "see the packet filter step; pairing by QR code still works", Facts: []string{key, fact(StepFilter, "verdicts", drop.Packet)}})
	case len(ok) == 0 && joined:
		a.add(Finding{ID: "multicast-no-loop", Severity: SevWarn, Step: StepMulticast,
			Text: "multicast is joined and sent but does not come back on any interface: " + strings.Join(bad, ", "),
			Hint: "discovery cannot work from here; pair with the QR code, which carries the address", Facts: []string{key}})
	case len(ok) == 0:
		text := "cannot send and receive multicast on any interface"
		if m.Error != "" {
			text += ": " + m.Error
		} else if len(bad) > 0 {
			text += ": " + strings.Join(bad, ", ")
		}
		a.add(Finding{ID: "multicast-none", Severity: SevFail, Step: StepMulticast, Text: text,
			Hint: "no interface that is up can multicast: discovery cannot work here; pair with the QR code, which carries the address", Facts: []string{key}})
	case len(bad) > 0:
		a.summary[StepMulticast] = "works on " + strings.Join(ok, ", ")
		a.add(Finding{ID: "multicast-some", Severity: SevWarn, Step: StepMulticast, Text: "not on " + strings.Join(bad, ", "),
			Hint: "those interfaces cannot carry discovery", Facts: []string{key}})
	default:
		a.summary[StepMulticast] = "join, send and receive work on " + strings.Join(ok, ", ")
	}
}

// sharesLink reports whether peer address p is on the link that holds our
// address own (the prober could dial it directly).
func (a *analysis) sharesLink(own netip.Addr, ifname string, p netip.Addr) bool {
	if a.f.Interfaces == nil || !p.IsValid() {
		return false
	}
	if p.IsLinkLocalUnicast() {
		return own.IsLinkLocalUnicast() && p.Zone() == ifname
	}
	in, ok := a.f.Interfaces.byName(ifname)
	if !ok {
		return false
	}
	for _, pre := range in.Addrs {
		// An own link-local address: any prober on that link shares it.
		if pre.Masked().Contains(p.WithZone("")) && (own.IsLinkLocalUnicast() || pre.Masked().Contains(own.WithZone(""))) {
			return true
		}
	}
	return false
}
