package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link classes: what an interface is, told from the kernel's facts (the
// netlink link kind, its link layer, its bridge ports, its routes), never
// from its name.
const (
	// ClassLAN: Ethernet, Wi-Fi, and what the kernel cannot tell apart
	// from them (veth as a container's uplink, VLAN, bond, macvlan, a
	// bridge with a real port or the gateway).
	ClassLAN = "lan"
	// ClassTunnel: a VPN or tunnel (tun/tap, WireGuard, GRE, IPIP, SIT,
	// PPP…, or any link without a link layer).
	ClassTunnel = "tunnel"
	// ClassVirtual: a bridge with no port to a network (containers or VMs
	// only, or none), a dummy, an overlay.
	ClassVirtual = "virtual"
	// ClassLoopback: lo.
	ClassLoopback = "loopback"
)

// LinkFacts is what the kernel says about one interface.
type LinkFacts struct {
	Name string `json:"name"`
	// Kind is the netlink link kind ("device" for hardware, "veth",
	// "bridge", "tuntap", "wireguard", …).
	Kind      string `json:"kind"`
	Class     string `json:"class"`
	Carrier   bool   `json:"carrier"`
	OperState string `json:"operstate"`
	// Gateway: a default route (in any routing table) leaves by it.
	Gateway  bool     `json:"gateway,omitempty"`
	Wireless bool     `json:"wireless,omitempty"`
	Ports    []string `json:"ports,omitempty"` // a bridge's
	MTU      int      `json:"mtu"`
	// Why says what made the class.
	Why string `json:"why"`
}

// Demoted reports whether addresses on the link rank below all others:
// a tunnel, a virtual link, or no carrier.
func (f LinkFacts) Demoted() bool {
	return f.Class == ClassTunnel || f.Class == ClassVirtual || !f.Carrier
}

var tunnelKinds = []string{"tuntap", "tun", "wireguard", "ipip", "gre", "gretap", "ip6gre", "ip6gretap", "sit", "vti", "vti6", "ip6tnl", "xfrm", "ppp", "ipoib"}
var virtualKinds = []string{"dummy", "vxlan", "geneve", "ifb", "nlmon", "vcan", "bareudp"}
var realPortKinds = []string{"device", "bond", "vlan", "team", "macvlan", "ipvlan"}

// linkLayers without a link layer: a tunnel whatever its kind says.
var tunnelEncaps = []string{"none", "ppp", "ipip", "sit", "tunnel", "tunnel6", "ip6gre", "gre", "void"}

// ReadLinks asks the kernel about every interface, by name.
func ReadLinks() (map[string]LinkFacts, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netlink: list links: %w", err)
	}
	gw := gatewayLinks()
	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	out := make(map[string]LinkFacts, len(links))
	for _, l := range links {
		a := l.Attrs()
		f := LinkFacts{Name: a.Name, Kind: l.Type(), OperState: a.OperState.String(), MTU: a.MTU,
			Carrier: a.RawFlags&unix.IFF_LOWER_UP != 0 && a.OperState != netlink.OperDown && a.OperState != netlink.OperLowerLayerDown,
			Gateway: gw[a.Index], Wireless: isWireless(a.Name)}
		for _, p := range links {
			if p.Attrs().MasterIndex == a.Index {
				f.Ports = append(f.Ports, p.Attrs().Name)
			}
		}
		f.Class, f.Why = classify(f, a, byIndex)
		out[a.Name] = f
	}
	return out, nil
}

func classify(f LinkFacts, a *netlink.LinkAttrs, byIndex map[int]netlink.Link) (class, why string) {
	switch {
	case a.Flags&net.FlagLoopback != 0:
		return ClassLoopback, "loopback"
	case slices.Contains(tunnelKinds, f.Kind):
		return ClassTunnel, "a tunnel or VPN (link kind " + f.Kind + ")"
	case slices.Contains(tunnelEncaps, a.EncapType) || a.Flags&net.FlagPointToPoint != 0:
		return ClassTunnel, fmt.Sprintf("a point-to-point link without a link layer (%s): a tunnel or VPN", a.EncapType)
	case slices.Contains(virtualKinds, f.Kind):
		return ClassVirtual, "a virtual link (" + f.Kind + ")"
	case f.Kind == "bridge":
		if f.Gateway {
			return ClassLAN, "a bridge that holds the default route"
		}
		for _, pn := range f.Ports {
			for _, p := range byIndex {
				if p.Attrs().Name == pn && (slices.Contains(realPortKinds, p.Type()) || isWireless(pn)) {
					return ClassLAN, "a bridge with the real port " + pn
				}
			}
		}
		if len(f.Ports) == 0 {
			return ClassVirtual, "a bridge without ports"
		}
		return ClassVirtual, "a bridge of only virtual ports (" + strings.Join(f.Ports, ", ") + "): containers or VMs"
	case f.Wireless:
		return ClassLAN, "Wi-Fi"
	case f.Kind == "device":
		return ClassLAN, "Ethernet"
	}
	return ClassLAN, "a LAN link (" + f.Kind + ")"
}

func isWireless(name string) bool {
	for _, p := range []string{"/sys/class/net/" + name + "/wireless", "/sys/class/net/" + name + "/phy80211"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// gatewayLinks are the indexes of the links default routes leave by, in
// every table (policy routing keeps a VPN's default route out of main).
func gatewayLinks() map[int]bool {
	out := map[int]bool{}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return out
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.Type != unix.RTN_UNICAST || r.Table == unix.RT_TABLE_LOCAL {
			continue
		}
		out[r.LinkIndex] = true
		for _, nh := range r.MultiPath {
			out[nh.LinkIndex] = true
		}
	}
	return out
}

// linkCache answers LinkFacts from a snapshot refreshed every linksFresh.
type linkCache struct {
	mu    sync.Mutex
	at    time.Time
	links map[string]LinkFacts
}

func (c *linkCache) get() map[string]LinkFacts {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.links == nil || time.Since(c.at) > linksFresh {
		if l, err := ReadLinks(); err == nil {
			c.links = l
		} else if c.links == nil {
			c.links = map[string]LinkFacts{}
		}
		c.at = time.Now()
	}
	return c.links
}

// invalidate makes the next get read the kernel again.
func (c *linkCache) invalidate() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

// Resolved is the kernel's answer to "how would a packet to Dst leave":
// its own lookup, policy rules included ('ip route get').
type Resolved struct {
	Dst       string `json:"dst"`
	Interface string `json:"interface,omitempty"`
	Source    string `json:"source,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
	// Table is the routing table that answered: not "main" under policy
	// routing (a VPN's fwmark rules).
	Table    string `json:"table,omitempty"`
	LinkDown bool   `json:"linkdown,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ErrNoRouteTo: the kernel has no route for the destination.
var ErrNoRouteTo = errors.New("no route")

// RouteTo resolves dst with the kernel's lookup.
func RouteTo(dst netip.Addr) (Resolved, error) {
	r := Resolved{Dst: dst.String()}
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		r.Error = err.Error()
		return r, fmt.Errorf("%w to %s: %v", ErrNoRouteTo, dst, err)
	}
	if len(routes) == 0 {
		r.Error = "no route"
		return r, fmt.Errorf("%w to %s", ErrNoRouteTo, dst)
	}
	rt := routes[0]
	if l, err := netlink.LinkByIndex(rt.LinkIndex); err == nil {
		r.Interface = l.Attrs().Name
	}
	if rt.Src != nil {
		r.Source = rt.Src.String()
	}
	if rt.Gw != nil {
		r.Gateway = rt.Gw.String()
	}
	r.Table = TableName(rt.Table)
	r.LinkDown = rt.Flags&unix.RTNH_F_LINKDOWN != 0
	return r, nil
}

// TableName is a routing table's name as 'ip route' shows it.
func TableName(t int) string {
	switch t {
	case unix.RT_TABLE_MAIN:
		return "main"
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return fmt.Sprint(t)
}
