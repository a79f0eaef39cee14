// Package mcast is a UDP socket of one address family that sends to a
// multicast group out of a chosen interface and tells on which interface
// each datagram arrived (golang.org/x/net control messages). The beacon
// and the mDNS browser share it.
package mcast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Conn is one UDP socket of one family.
type Conn struct {
	V6   bool
	conn net.PacketConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

// Listen opens a UDP socket on port (0 = ephemeral). A non-zero port is
// shared with SO_REUSEADDR and SO_REUSEPORT. ttl is the multicast TTL /
// hop limit; multicast loop is on.
func Listen(v6 bool, port, ttl int) (*Conn, error) {
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
	s := &Conn{V6: v6, conn: c}
	if v6 {
		s.p6 = ipv6.NewPacketConn(c)
		err = errors.Join(
			s.p6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true),
			s.p6.SetMulticastHopLimit(ttl),
			s.p6.SetMulticastLoopback(true),
		)
	} else {
		s.p4 = ipv4.NewPacketConn(c)
		err = errors.Join(
			s.p4.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true),
			s.p4.SetMulticastTTL(ttl),
			s.p4.SetMulticastLoopback(true),
		)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// Join joins group on ifi; already being a member is no error.
func (s *Conn) Join(ifi *net.Interface, group netip.Addr) error {
	g := &net.UDPAddr{IP: group.AsSlice()}
	var err error
	if s.V6 {
		err = s.p6.JoinGroup(ifi, g)
	} else {
		err = s.p4.JoinGroup(ifi, g)
	}
	if errors.Is(err, unix.EADDRINUSE) {
		return nil
	}
	return err
}

// Read returns one datagram, its source (with zone for link-local IPv6,
// IPv4 unmapped) and the index of the interface it arrived on.
func (s *Conn) Read(b []byte) (int, netip.AddrPort, int, error) {
	n, from, ifindex, _, err := s.ReadDst(b)
	return n, from, ifindex, err
}

// ReadDst is Read that also tells the datagram's destination address (a
// multicast group, or one of ours for unicast).
func (s *Conn) ReadDst(b []byte) (int, netip.AddrPort, int, netip.Addr, error) {
	var (
		n       int
		src     net.Addr
		ifindex int
		dst     net.IP
		err     error
	)
	if s.V6 {
		var cm *ipv6.ControlMessage
		n, cm, src, err = s.p6.ReadFrom(b)
		if cm != nil {
			ifindex, dst = cm.IfIndex, cm.Dst
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, src, err = s.p4.ReadFrom(b)
		if cm != nil {
			ifindex, dst = cm.IfIndex, cm.Dst
		}
	}
	if err != nil {
		return 0, netip.AddrPort{}, 0, netip.Addr{}, err
	}
	ua, _ := src.(*net.UDPAddr)
	if ua == nil {
		return 0, netip.AddrPort{}, 0, netip.Addr{}, fmt.Errorf("unexpected source address %v", src)
	}
	ap := ua.AddrPort()
	d, _ := netip.AddrFromSlice(dst)
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ifindex, d.Unmap(), nil
}

// WriteTo sends b to dst, out of interface ifindex when it is not 0.
func (s *Conn) WriteTo(b []byte, dst netip.AddrPort, ifindex int) error {
	ua := net.UDPAddrFromAddrPort(dst)
	var err error
	if s.V6 {
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

// Close closes the socket.
func (s *Conn) Close() error { return s.conn.Close() }

var ifnames sync.Map // interface index → name

// InterfaceName names the interface with index (as Read reports it), ""
// when unknown. Names are cached: a packet costs no netlink dump.
func InterfaceName(index int) string {
	if index == 0 {
		return ""
	}
	if name, ok := ifnames.Load(index); ok {
		return name.(string)
	}
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return ""
	}
	ifnames.Store(index, ifi.Name)
	return ifi.Name
}
