package beacon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// socket is one UDP socket of one address family with the x/net wrapper
// that gives per-packet interface control.
type socket struct {
	v6   bool
	conn net.PacketConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

// listenUDP opens a UDP socket of one family on port (0 = ephemeral). A
// non-zero port is shared with SO_REUSEADDR and SO_REUSEPORT.
func listenUDP(v6 bool, port int) (*socket, error) {
	lc := net.ListenConfig{}
	if port != 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
					return
				}
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			return errors.Join(err, serr)
		}
	}
	network, addr := "udp4", fmt.Sprintf("0.0.0.0:%d", port)
	if v6 {
		network, addr = "udp6", fmt.Sprintf("[::]:%d", port)
	}
	c, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	s := &socket{v6: v6, conn: c}
	if v6 {
		s.p6 = ipv6.NewPacketConn(c)
		err = errors.Join(
			s.p6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true),
			s.p6.SetMulticastHopLimit(1),
			s.p6.SetMulticastLoopback(true),
		)
	} else {
		s.p4 = ipv4.NewPacketConn(c)
		err = errors.Join(
			s.p4.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true),
			s.p4.SetMulticastTTL(1),
			s.p4.SetMulticastLoopback(true),
		)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

func (s *socket) join(ifi *net.Interface, group netip.Addr) error {
	g := &net.UDPAddr{IP: group.AsSlice()}
	var err error
	if s.v6 {
		err = s.p6.JoinGroup(ifi, g)
	} else {
		err = s.p4.JoinGroup(ifi, g)
	}
	if errors.Is(err, unix.EADDRINUSE) { // already a member
		return nil
	}
	return err
}

// read returns one datagram, its source (with zone for link-local IPv6) and
// the index of the interface it arrived on.
func (s *socket) read(b []byte) (int, netip.AddrPort, int, error) {
	var (
		n       int
		src     net.Addr
		ifindex int
		err     error
	)
	if s.v6 {
		var cm *ipv6.ControlMessage
		n, cm, src, err = s.p6.ReadFrom(b)
		if cm != nil {
			ifindex = cm.IfIndex
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, src, err = s.p4.ReadFrom(b)
		if cm != nil {
			ifindex = cm.IfIndex
		}
	}
	if err != nil {
		return 0, netip.AddrPort{}, 0, err
	}
	ua, _ := src.(*net.UDPAddr)
	if ua == nil {
		return 0, netip.AddrPort{}, 0, fmt.Errorf("unexpected source address %v", src)
	}
	ap := ua.AddrPort()
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ifindex, nil
}

// writeTo sends b to dst, out of interface ifindex when it is not 0.
func (s *socket) writeTo(b []byte, dst netip.AddrPort, ifindex int) error {
	ua := net.UDPAddrFromAddrPort(dst)
	var err error
	if s.v6 {
		var cm *ipv6.ControlMessage
		if ifindex != 0 {
			cm = &ipv6.ControlMessage{IfIndex: ifindex}
		}
		_, err = s.p6.WriteTo(b, cm, ua)
	} else {
		var cm *ipv4.ControlMessage
		if ifindex != 0 {
			cm = &ipv4.ControlMessage{IfIndex: ifindex}
		}
		_, err = s.p4.WriteTo(b, cm, ua)
	}
	return err
}

func (s *socket) close() error { return s.conn.Close() }

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
