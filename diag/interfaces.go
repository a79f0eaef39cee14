package diag

import (
	"context"
	"net"
	"net/netip"

	"github.com/lanpairing/pairing/discovery"
)

// InterfaceFacts is the interfaces step's record: every interface, with
// what the kernel says about it.
type InterfaceFacts struct {
	Interfaces []Interface `json:"interfaces"`
	Error      string      `json:"error,omitempty"`
}

// Interface is one interface.
type Interface struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	Flags string `json:"flags"`
	MTU   int    `json:"mtu"`
	// Kind is the kernel's word for it: loopback, ethernet, wifi, veth,
	// bridge, vpn, virtual, or the netlink link kind.
	Kind string `json:"kind"`
	// Class is discovery's class: lan, tunnel, virtual, loopback.
	Class   string         `json:"class"`
	Up      bool           `json:"up"`
	Carrier bool           `json:"carrier"`
	Addrs   []netip.Prefix `json:"addresses"`
	// Link is what the kernel says: link kind, class, carrier, operstate.
	Link *discovery.LinkFacts `json:"link,omitempty"`
}

// kindOf names an interface from the kernel's facts, never its name.
func kindOf(ifi net.Interface, f discovery.LinkFacts, known bool) string {
	switch {
	case ifi.Flags&net.FlagLoopback != 0:
		return "loopback"
	case !known:
		return "unknown"
	case f.Class == discovery.ClassTunnel:
		return "vpn"
	case f.Wireless:
		return "wifi"
	case f.Kind == "device":
		return "ethernet"
	case f.Kind == "bridge" || f.Kind == "veth":
		return f.Kind
	case f.Class == discovery.ClassVirtual:
		return "virtual"
	}
	return f.Kind
}

func gatherInterfaces(ctx context.Context, e *env, _ Facts) Facts {
	out := &InterfaceFacts{}
	ifs, err := e.cfg.Interfaces()
	if err != nil {
		out.Error = err.Error()
		return Facts{Interfaces: out}
	}
	links, _ := discovery.ReadLinks()
	for _, ifi := range ifs {
		f, known := links[ifi.Name]
		in := Interface{Name: ifi.Name, Index: ifi.Index, Flags: ifi.Flags.String(), MTU: ifi.MTU,
			Kind: kindOf(ifi, f, known), Class: f.Class, Up: ifi.Flags&net.FlagUp != 0,
			Carrier: ifi.Flags&net.FlagRunning != 0 && (!known || f.Carrier)}
		if ifi.Flags&net.FlagLoopback != 0 {
			in.Class = discovery.ClassLoopback
		} else if !known {
			in.Class = discovery.ClassLAN
		}
		if known {
			in.Link = &f
		}
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				in.Addrs = append(in.Addrs, p)
			}
		}
		out.Interfaces = append(out.Interfaces, in)
	}
	return Facts{Interfaces: out}
}

// OwnPrefix is one address of ours with its prefix and interface.
type OwnPrefix struct {
	Prefix    netip.Prefix
	Interface string
	Class     string
}

// prefixes are our addresses on interfaces that are up, loopback left out.
func (f *InterfaceFacts) prefixes() []OwnPrefix {
	if f == nil {
		return nil
	}
	var out []OwnPrefix
	for _, in := range f.Interfaces {
		if !in.Up || in.Class == discovery.ClassLoopback {
			continue
		}
		for _, p := range in.Addrs {
			out = append(out, OwnPrefix{p, in.Name, in.Class})
		}
	}
	return out
}

// byName is the interface named name.
func (f *InterfaceFacts) byName(name string) (Interface, bool) {
	if f != nil {
		for _, in := range f.Interfaces {
			if in.Name == name {
				return in, true
			}
		}
	}
	return Interface{}, false
}

// linkOf names our interface whose prefix holds a (a link-local
// address: its zone), "" when a is on none of our links.
func (f *InterfaceFacts) linkOf(a netip.Addr) string {
	a = a.Unmap()
	if a.IsLinkLocalUnicast() {
		return a.Zone()
	}
	a = a.WithZone("")
	best, bits := "", -1
	for _, p := range f.prefixes() {
		if p.Prefix.Masked().Contains(a) && p.Prefix.Bits() > bits {
			best, bits = p.Interface, p.Prefix.Bits()
		}
	}
	return best
}

// isOwn reports whether a is one of our addresses.
func (f *InterfaceFacts) isOwn(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range f.prefixes() {
		if p.Prefix.Addr().WithZone("") == a {
			return true
		}
	}
	return false
}

// interfaceOf is the interface that has the address a.
func (f *InterfaceFacts) interfaceOf(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	for _, p := range f.prefixes() {
		if p.Prefix.Addr().WithZone("") == a {
			return p.Interface
		}
	}
	return ""
}
