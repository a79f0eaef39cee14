package discovery

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// linksFresh is how long Links trusts its list of prefixes: interfaces
// change rarely, packets come by the thousand.
const linksFresh = 2 * time.Second

// Links answers OnLink from a list of our prefixes refreshed every
// linksFresh, cheap enough for every packet of a flood. Safe for
// concurrent use.
type Links struct {
	Interfaces func() ([]net.Interface, error)

	mu       sync.Mutex
	at       time.Time
	prefixes []ifPrefix
}

// ifPrefix is one own address, its prefix length and its interface.
type ifPrefix struct {
	netip.Prefix
	name string
}

// OnLink reports whether a is link-local or inside one of our prefixes.
func (l *Links) OnLink(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	if a.IsLinkLocalUnicast() {
		return true
	}
	a = a.WithZone("")
	for _, p := range l.snapshot() {
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

// IsOwn reports whether a is an address of one of our up, non-loopback
// interfaces (from the same cached list as OnLink).
func (l *Links) IsOwn(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	for _, p := range l.snapshot() {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// LinkOf names our interface a is on: a link-local address's zone, else
// the interface whose prefix holds a; "" when a is on none of our links.
func (l *Links) LinkOf(a netip.Addr) string {
	a = a.Unmap()
	if a.IsLinkLocalUnicast() {
		return a.Zone()
	}
	a = a.WithZone("")
	for _, p := range l.snapshot() {
		if p.Masked().Contains(a) {
			return p.name
		}
	}
	return ""
}

// Shares reports whether peer can reach our address own from its own
// link: a link-local own address only from that very link (the zone's
// interface), any other only from inside own's prefix. This is where a
// reverse probe can hold; elsewhere a peer's silence says nothing.
func (l *Links) Shares(own, peer netip.Addr) bool {
	own, peer = own.Unmap(), peer.Unmap()
	if !peer.IsValid() || peer.IsLoopback() || peer.IsMulticast() || peer.IsUnspecified() || own.Is4() != peer.Is4() {
		return false
	}
	if own.Is6() && own.IsLinkLocalUnicast() {
		if peer.Is6() && peer.IsLinkLocalUnicast() {
			return own.Zone() != "" && peer.Zone() == own.Zone()
		}
		return own.Zone() != "" && l.LinkOf(peer) == own.Zone()
	}
	own = own.WithZone("")
	for _, p := range l.snapshot() {
		if p.Addr() == own {
			return p.Masked().Contains(peer.WithZone(""))
		}
	}
	return false
}

func (l *Links) snapshot() []ifPrefix {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.at) > linksFresh {
		l.prefixes, l.at = prefixes(l.Interfaces), time.Now()
	}
	return l.prefixes
}

// prefixes are the addresses and prefix lengths of the up, non-loopback
// interfaces ifs lists.
func prefixes(ifs func() ([]net.Interface, error)) []ifPrefix {
	var out []ifPrefix
	eachAddr(ifs, func(name string, p netip.Prefix) { out = append(out, ifPrefix{p, name}) })
	return out
}

// eachAddr calls f with every address (and its prefix length) of the up,
// non-loopback interfaces ifs lists (nil: net.Interfaces).
func eachAddr(ifs func() ([]net.Interface, error), f func(string, netip.Prefix)) {
	if ifs == nil {
		ifs = net.Interfaces
	}
	list, _ := ifs()
	for _, ifi := range list {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifi.Addrs()
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(n.IP)
				ones, _ := n.Mask.Size()
				f(ifi.Name, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
	}
}

// IsOwn reports whether a is an address of an up, non-loopback interface
// that ifs lists: the only addresses a peer may tell us we have.
func IsOwn(ifs func() ([]net.Interface, error), a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	own := false
	eachAddr(ifs, func(_ string, p netip.Prefix) { own = own || p.Addr() == a })
	return own
}
