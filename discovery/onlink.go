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
	prefixes []netip.Prefix
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
	l.mu.Lock()
	if time.Since(l.at) > linksFresh {
		l.prefixes, l.at = prefixes(l.Interfaces), time.Now()
	}
	ps := l.prefixes
	l.mu.Unlock()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// prefixes are the prefixes of the up, non-loopback interfaces ifs lists.
func prefixes(ifs func() ([]net.Interface, error)) []netip.Prefix {
	var out []netip.Prefix
	eachAddr(ifs, func(p netip.Prefix) { out = append(out, p.Masked()) })
	return out
}

// eachAddr calls f with every address (and its prefix length) of the up,
// non-loopback interfaces ifs lists (nil: net.Interfaces).
func eachAddr(ifs func() ([]net.Interface, error), f func(netip.Prefix)) {
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
				f(netip.PrefixFrom(ip.Unmap(), ones))
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
	eachAddr(ifs, func(p netip.Prefix) { own = own || p.Addr() == a })
	return own
}
