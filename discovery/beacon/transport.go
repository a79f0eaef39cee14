package beacon

import (
	"net"
	"net/netip"

	"github.com/lanpairing/pairing/internal/mcast"
)

// socket is the multicast socket the beacon uses (TTL / hop limit 1).
type socket = mcast.Conn

func listenUDP(v6 bool, port int) (*socket, error) { return mcast.Listen(v6, port, 1) }

// multicastInterface reports whether beacons can use ifi for the family,
// and why not.
func multicastInterface(ifi net.Interface, v6 bool) (bool, string) {
	switch {
	case ifi.Flags&net.FlagUp == 0:
		return false, "down"
	case ifi.Flags&net.FlagLoopback != 0:
		return false, "loopback"
	case ifi.Flags&net.FlagMulticast == 0:
		return false, "no multicast"
	case ifi.Flags&net.FlagRunning == 0:
		return false, "no carrier"
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false, err.Error()
	}
	for _, a := range addrs {
		pfx, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(pfx.IP)
		ip = ip.Unmap()
		if v6 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return true, ""
		}
		if !v6 && ip.Is4() {
			return true, ""
		}
	}
	if v6 {
		return false, "no IPv6 link-local address"
	}
	return false, "no IPv4 address"
}
