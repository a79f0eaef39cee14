package diag

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lanpairing/pairing/discovery"
)

// RouteFacts is the routes step's record: the kernel's own answers
// (longest prefix, metrics, policy rules) for the destinations that
// matter, and the routes and rules behind them.
type RouteFacts struct {
	// Defaults are the default routes, in every table.
	Defaults []RouteEntry `json:"defaults"`
	// Tunnels are the routes that leave by a tunnel, in every table.
	Tunnels []RouteEntry `json:"tunnel_routes,omitempty"`
	// Rules are the policy rules beyond the kernel's three.
	Rules []string `json:"rules,omitempty"`
	// Lookups are the kernel's answers for the destinations that matter.
	Lookups []RouteLookup `json:"lookups"`
}

// RouteEntry is one route of the kernel's tables.
type RouteEntry struct {
	Prefix    netip.Prefix `json:"prefix"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	Interface string       `json:"interface"`
	Table     string       `json:"table"`
	Metric    int          `json:"metric,omitempty"`
}

// Purposes of a RouteLookup.
const (
	LookupOutside = "outside" // where outside traffic (and the QR's best guess) leaves
	LookupLAN     = "lan"     // an address of one of our LAN prefixes
	LookupPeer    = "peer"    // a peer's address (the peers step)
	LookupTunnel  = "tunnel"  // inside a tunnel route that overlaps a LAN prefix
)

// RouteLookup is the kernel's answer for one destination.
type RouteLookup struct {
	Purpose string `json:"purpose"`
	// Of is what the destination stands for: a LAN prefix and its
	// interface, a tunnel route, a peer.
	Of string `json:"of,omitempty"`
	// Expect is the interface the destination is on, when we know it
	// (the LAN prefix's own).
	Expect string `json:"expect,omitempty"`
	discovery.Resolved
	// Class is the class of the interface the kernel chose.
	Class string `json:"class,omitempty"`
}

// probeGateways dials each IPv4 default gateway (port 9: a refusal is an
// answer too) and reads its neighbour entry after.
func probeGateways(ctx context.Context, defaults []RouteEntry) []GatewayProbe {
	var out []GatewayProbe
	for _, d := range defaults {
		if !d.Gateway.IsValid() || !d.Gateway.Is4() || slices.ContainsFunc(out, func(g GatewayProbe) bool { return g.Addr == d.Gateway }) {
			continue
		}
		g := GatewayProbe{Addr: d.Gateway, Interface: d.Interface}
		var conn net.Conn
		if conn, g.TCP = dialTCP(ctx, netip.AddrPortFrom(d.Gateway, 9), 400*time.Millisecond); conn != nil {
			conn.Close()
		}
		g.Neighbour = neighbourState(d.Gateway)
		out = append(out, g)
	}
	return out
}

// GatewayProbe is a default gateway and what it answered.
type GatewayProbe struct {
	Addr      netip.Addr `json:"addr"`
	Interface string     `json:"interface"`
	TCP       DialResult `json:"tcp"`
	// Neighbour is the kernel's neighbour state for it after the dial
	// (REACHABLE, STALE, FAILED, INCOMPLETE…).
	Neighbour string `json:"neighbour,omitempty"`
}

// Answers reports whether the gateway answered anything.
func (g GatewayProbe) Answers() bool {
	return g.TCP.Outcome == DialOK || g.TCP.Outcome == DialRefused || g.TCP.Outcome == DialProhibited || neighbourAnswered(g.Neighbour)
}

func neighbourAnswered(state string) bool {
	return slices.Contains([]string{"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"}, state)
}

// routeTo is the kernel lookup; a variable for tests.
var routeTo = discovery.RouteTo

func gatherRoutes(ctx context.Context, e *env, in Facts) Facts {
	out := &RouteFacts{}
	classOf := func(name string) string {
		if i, ok := in.Interfaces.byName(name); ok {
			return i.Class
		}
		return ""
	}
	lookup := func(purpose, of, expect string, dst netip.Addr) {
		rt, _ := routeTo(dst)
		out.Lookups = append(out.Lookups, RouteLookup{Purpose: purpose, Of: of, Expect: expect, Resolved: rt, Class: classOf(rt.Interface)})
	}
	for _, t := range discovery.DefaultRouteTargets {
		lookup(LookupOutside, "outside", "", t.Addr())
	}
	all, _ := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	names := map[int]string{}
	if ls, err := netlink.LinkList(); err == nil {
		for _, l := range ls {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	for _, r := range all {
		if r.Type != unix.RTN_UNICAST || r.Table == unix.RT_TABLE_LOCAL {
			continue
		}
		ent := RouteEntry{Interface: names[r.LinkIndex], Table: discovery.TableName(r.Table), Metric: r.Priority}
		if r.Gw != nil {
			ent.Gateway, _ = netip.AddrFromSlice(r.Gw)
			ent.Gateway = ent.Gateway.Unmap()
		}
		if r.Dst != nil {
			a, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			ent.Prefix = netip.PrefixFrom(a.Unmap(), ones)
		} else if r.Family == unix.AF_INET6 {
			ent.Prefix = netip.MustParsePrefix("::/0")
		} else {
			ent.Prefix = netip.MustParsePrefix("0.0.0.0/0")
		}
		if ent.Prefix.Bits() == 0 {
			out.Defaults = append(out.Defaults, ent)
		}
		if classOf(ent.Interface) == discovery.ClassTunnel {
			out.Tunnels = append(out.Tunnels, ent)
		}
	}
	if rules, err := netlink.RuleList(netlink.FAMILY_ALL); err == nil {
		for _, r := range rules {
			if r.Table == unix.RT_TABLE_LOCAL || (r.Table == unix.RT_TABLE_MAIN || r.Table == unix.RT_TABLE_DEFAULT) && r.Mark == 0 && r.SuppressPrefixlen <= 0 && r.Src == nil && r.Dst == nil {
				continue
			}
			out.Rules = append(out.Rules, ruleText(r))
		}
	}
	// Our LAN prefixes: three addresses of each (the first, the middle
	// and the last host), so a tunnel route that takes part of the
	// prefix shows; and every tunnel route inside one.
	lans := lanPrefixes(in.Interfaces)
	for _, p := range lans {
		for _, a := range samples(p.Prefix) {
			lookup(LookupLAN, fmt.Sprintf("%s on %s", p.Prefix.Masked(), p.Interface), p.Interface, a)
		}
	}
	for _, t := range out.Tunnels {
		for _, p := range lans {
			if t.Prefix.Bits() > p.Prefix.Bits() && p.Prefix.Masked().Contains(t.Prefix.Addr()) {
				lookup(LookupTunnel, fmt.Sprintf("%s via %s (table %s)", t.Prefix, t.Interface, t.Table), p.Interface, firstHost(t.Prefix))
			}
		}
	}
	return Facts{Routes: out}
}

// lanPrefixes are our IPv4, ULA and global IPv6 prefixes on LAN links
// (not /32 or /128: those hold no neighbours).
func lanPrefixes(f *InterfaceFacts) []OwnPrefix {
	var out []OwnPrefix
	for _, p := range f.prefixes() {
		a := p.Prefix.Addr()
		if p.Class != discovery.ClassLAN || a.IsLinkLocalUnicast() || p.Prefix.Bits() >= a.BitLen()-1 {
			continue
		}
		if slices.ContainsFunc(out, func(x OwnPrefix) bool { return x.Prefix.Masked() == p.Prefix.Masked() && x.Interface == p.Interface }) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// samples are the first, a middle and the last host of p, ours left out.
func samples(p netip.Prefix) []netip.Addr {
	base := p.Masked().Addr()
	first := base.Next()
	last := lastHost(p)
	mid := first
	if base.Is4() {
		b := base.As4()
		n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		n += 1 << (31 - p.Bits())
		mid = netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	var out []netip.Addr
	for _, a := range []netip.Addr{first, mid, last} {
		if a.IsValid() && a != p.Addr() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// lastHost is the last address of p before its broadcast (IPv4).
func lastHost(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	if a.Is4() {
		return a.Prev()
	}
	return a
}

func firstHost(p netip.Prefix) netip.Addr {
	if p.Bits() >= p.Addr().BitLen()-1 {
		return p.Addr()
	}
	return p.Masked().Addr().Next()
}

// ruleText is a policy rule as 'ip rule' shows it, roughly.
func ruleText(r netlink.Rule) string {
	s := fmt.Sprintf("%d:", r.Priority)
	if r.Invert {
		s += " not"
	}
	if r.Src != nil {
		s += " from " + r.Src.String()
	} else {
		s += " from all"
	}
	if r.Dst != nil {
		s += " to " + r.Dst.String()
	}
	if r.Mark != 0 {
		s += fmt.Sprintf(" fwmark %#x", r.Mark)
	}
	s += " lookup " + discovery.TableName(r.Table)
	if r.SuppressPrefixlen > 0 || r.SuppressPrefixlen == 0 && r.Table == unix.RT_TABLE_MAIN {
		s += fmt.Sprintf(" suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	return s
}

// neighbourState is the kernel's neighbour entry for a, if any.
func neighbourState(a netip.Addr) string {
	fam := netlink.FAMILY_V4
	if a.Is6() {
		fam = netlink.FAMILY_V6
	}
	// A zoned address is a neighbour on its zone's link only: the same
	// link-local address answering on another link says nothing of it.
	link := 0
	if z := a.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return ""
		}
		link = ifi.Index
	}
	ns, err := netlink.NeighList(link, fam)
	if err != nil {
		return ""
	}
	for _, n := range ns {
		if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == a.Unmap().WithZone("") {
			return neighStateName(n.State)
		}
	}
	return ""
}

func neighStateName(s int) string {
	switch {
	case s&netlink.NUD_PERMANENT != 0:
		return "PERMANENT"
	case s&netlink.NUD_REACHABLE != 0:
		return "REACHABLE"
	case s&netlink.NUD_STALE != 0:
		return "STALE"
	case s&netlink.NUD_DELAY != 0:
		return "DELAY"
	case s&netlink.NUD_PROBE != 0:
		return "PROBE"
	case s&netlink.NUD_FAILED != 0:
		return "FAILED"
	case s&netlink.NUD_INCOMPLETE != 0:
		return "INCOMPLETE"
	case s&netlink.NUD_NOARP != 0:
		return "NOARP"
	}
	return "NONE"
}
