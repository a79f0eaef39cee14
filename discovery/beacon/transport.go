package beacon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/lanpairing/pairing/internal/mcast"
	"github.com/lanpairing/pairing/internal/run"
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

// Datagram is one packet as the transport received it, not yet decoded.
// Data is valid only during the call that hands it over.
type Datagram struct {
	Data      []byte
	From      netip.AddrPort // source; link-local IPv6 carries its zone
	Interface string         // receiving interface, "" when unknown
	Multicast bool           // sent to a group (never crossed a router)
	V6        bool           // received on an IPv6 socket
}

// transport is what the protocol (Beacon, Query) needs from the network:
// the sockets per family and per interface. netTransport is the real one;
// a test can give the protocol one in memory.
type transport interface {
	// Listen reads every socket in its own goroutine until Close, handing
	// each datagram to handle (concurrently, one caller per socket).
	Listen(handle func(Datagram))
	// Multicast sends b to the group of each family on every usable
	// interface. It returns how many sends worked; an error only when
	// none did.
	Multicast(b []byte) (int, error)
	// Unicast sends b to one address from the ephemeral socket of the
	// family v6 names, so the receiver sees a source it can answer.
	Unicast(b []byte, to netip.AddrPort, v6 bool) error
	// Join joins the groups on interfaces not joined yet, leaves the
	// bookkeeping of unusable ones, and returns how many memberships exist.
	Join() int
	// Joined lists the memberships as "eth0/v4", "eth0/v6".
	Joined() []string
	// Close closes the sockets and waits for the readers. Safe twice.
	Close()
}

// netTransport is the transport over UDP sockets: an ephemeral socket
// per family that sends to the groups per interface and receives unicast
// replies and, for a Beacon, a socket per family on the group port.
type netTransport struct {
	cfg    Config
	count  *counters
	u4, u6 *socket // ephemeral: sends, unicast replies
	g4, g6 *socket // group port; nil for a Query
	g      *run.Group

	mu     sync.Mutex
	joined map[string]bool
}

// openTransport opens the ephemeral sockets and, when group is set, the
// group port's. It fails only when no socket of a kind can be opened.
func openTransport(cfg Config, count *counters, group bool) (*netTransport, error) {
	t := &netTransport{cfg: cfg, count: count, joined: map[string]bool{}}
	var err4, err6 error
	t.u4, err4 = listenUDP(false, 0)
	t.u6, err6 = listenUDP(true, 0)
	if err4 != nil && err6 != nil {
		return nil, fmt.Errorf("%w: %v; %v", ErrNoInterface, err4, err6)
	}
	if err6 != nil {
		cfg.Logger.Debug("beacon: no IPv6 socket", "err", err6)
	}
	if group {
		t.g4, err4 = listenUDP(false, cfg.Port)
		t.g6, err6 = listenUDP(true, cfg.Port)
		if err4 != nil && err6 != nil {
			closeAll(t.ephemeral())
			return nil, fmt.Errorf("%w: listen on port %d: %v; %v", ErrNoInterface, cfg.Port, err4, err6)
		}
		if err6 != nil {
			cfg.Logger.Info("beacon: IPv6 unavailable", "err", err6)
		}
	}
	t.g = run.New()
	return t, nil
}

func nonNil(s ...*socket) []*socket {
	var out []*socket
	for _, x := range s {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

func closeAll(s []*socket) {
	for _, x := range s {
		x.Close()
	}
}

func (t *netTransport) ephemeral() []*socket { return nonNil(t.u4, t.u6) }
func (t *netTransport) groupPort() []*socket { return nonNil(t.g4, t.g6) }

func (t *netTransport) Listen(handle func(Datagram)) {
	for _, s := range append(t.ephemeral(), t.groupPort()...) {
		t.g.Go(func(context.Context) { t.readLoop(s, handle) })
	}
}

// readLoop reads s until it is closed and hands every packet to handle.
func (t *netTransport) readLoop(s *socket, handle func(Datagram)) {
	buf := make([]byte, MaxPacketSize+1) // one more byte reveals oversize
	for {
		n, from, ifindex, dst, err := s.ReadDst(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.cfg.Logger.Debug("beacon: read", "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		t.count.received.Add(1)
		handle(Datagram{Data: buf[:n], From: from, Interface: mcast.InterfaceName(ifindex),
			Multicast: dst.IsMulticast(), V6: s.V6})
	}
}

func (t *netTransport) Multicast(b []byte) (int, error) {
	ifs, err := t.cfg.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("list interfaces: %w", err)
	}
	sent := 0
	var errs []error
	for _, s := range t.ephemeral() {
		group := netip.AddrPortFrom(t.cfg.Group4, uint16(t.cfg.Port))
		if s.V6 {
			group = netip.AddrPortFrom(t.cfg.Group6, uint16(t.cfg.Port))
		}
		for _, ifi := range ifs {
			if ok, _ := multicastInterface(ifi, s.V6); !ok {
				continue
			}
			if err := s.WriteTo(b, group, ifi.Index); err != nil {
				t.count.sendError(err)
				errs = append(errs, fmt.Errorf("%s: %w", ifi.Name, err))
				continue
			}
			t.count.sent.Add(1)
			sent++
		}
	}
	if sent == 0 {
		errs = append(errs, ErrNoInterface)
		return 0, errors.Join(errs...)
	}
	for _, err := range errs {
		t.cfg.Logger.Debug("beacon: send failed on one interface", "err", err)
	}
	return sent, nil
}

func (t *netTransport) Unicast(b []byte, to netip.AddrPort, v6 bool) error {
	out := t.u4
	if v6 {
		out = t.u6
	}
	if out == nil {
		return fmt.Errorf("%w: no socket for the family of %s", ErrNoInterface, to)
	}
	if err := out.WriteTo(b, to, 0); err != nil {
		t.count.sendError(err)
		return err
	}
	t.count.sent.Add(1)
	return nil
}

func (t *netTransport) Join() int {
	ifs, err := t.cfg.Interfaces()
	if err != nil {
		t.cfg.Logger.Warn("beacon: list interfaces", "err", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.groupPort() {
		fam, group := "v4", t.cfg.Group4
		if s.V6 {
			fam, group = "v6", t.cfg.Group6
		}
		for _, ifi := range ifs {
			key := fmt.Sprintf("%s/%s", ifi.Name, fam)
			ok, why := multicastInterface(ifi, s.V6)
			if !ok {
				if t.joined[key] {
					t.cfg.Logger.Info("beacon: interface unusable", "interface", ifi.Name, "family", fam, "reason", why)
					delete(t.joined, key)
				}
				continue
			}
			if t.joined[key] {
				continue
			}
			if err := s.Join(&ifi, group); err != nil {
				t.cfg.Logger.Info("beacon: cannot join group; skipping interface", "interface", ifi.Name, "family", fam, "err", err)
				continue
			}
			t.joined[key] = true
			t.cfg.Logger.Debug("beacon: joined group", "interface", ifi.Name, "group", group)
		}
	}
	return len(t.joined)
}

func (t *netTransport) Joined() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k := range t.joined {
		out = append(out, k)
	}
	return out
}

func (t *netTransport) Close() {
	closeAll(append(t.ephemeral(), t.groupPort()...))
	t.g.Close()
}

var _ transport = (*netTransport)(nil)
