package discovery

import (
	"net"
	"net/netip"
)

// OnLink reports whether a is on one of our links: link-local, or inside
// the prefix of an address of an up, non-loopback interface that ifs
// lists. Only such addresses are dialled or used for a stranger's sake.
func OnLink(ifs func() ([]net.Interface, error), a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	if a.IsLinkLocalUnicast() {
		return true
	}
	a = a.WithZone("")
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
				if p, err := ip.Unmap().Prefix(ones); err == nil && p.Contains(a) {
					return true
				}
			}
		}
	}
	return false
}

// IsOwn reports whether a is an address of an up, non-loopback interface
// that ifs lists: the only addresses a peer may tell us we have.
func IsOwn(ifs func() ([]net.Interface, error), a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	list, _ := ifs()
	for _, ifi := range list {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifi.Addrs()
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				if ip, _ := netip.AddrFromSlice(n.IP); ip.Unmap() == a {
					return true
				}
			}
		}
	}
	return false
}
