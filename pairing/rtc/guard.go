package rtc

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
)

// The send guard: every packet pion sends from an ICE socket passes
// through it, whatever made pion choose the destination (an address in
// the offer, a .local name resolved by mDNS, a peer-reflexive address
// learned from a packet's source, a candidate trickled later, an
// IPv4-mapped IPv6 form of any of these). It lets through packets to
// addresses the endpoint's Allow accepts (our links), to the STUN and
// TURN servers pion resolved through this Net (the configured ones), and
// to loopback when loopback candidates are on; it drops and counts every
// other one. Filtering candidates in the SDP alone cannot do this: a
// .local name resolves after the filter ran, to whatever the peer's own
// mDNS responder says.
//
// What it covers: the host candidates' sockets (ListenUDP) and the TURN
// client's socket (ListenPacket). It leaves alone the mDNS socket (bound
// to the mDNS group, port 5353; query-only mode sends only to the group)
// and connected sockets (DialUDP, DialTCP: pion dials only the resolved
// servers).

// maxServers bounds the server addresses a guard remembers: a handful are
// configured.
const maxServers = 64

// recheck is how long a guard trusts its last verdict for one
// destination: a transfer sends tens of thousands of packets a second to
// one address, and our links change rarely.
const recheck = time.Second

// guard decides where an endpoint's ICE sockets may send.
type guard struct {
	allow    func(netip.Addr) bool
	loopback bool
	log      *slog.Logger
	dropped  atomic.Int64

	mu      sync.Mutex
	servers map[netip.Addr]bool
	last    netip.Addr // the last destination let through …
	lastAt  time.Time  // … and when that was decided
	logged  int
}

func newGuard(allow func(netip.Addr) bool, loopback bool, log *slog.Logger) *guard {
	return &guard{allow: allow, loopback: loopback, log: log, servers: map[netip.Addr]bool{}}
}

// server records an address pion resolved (a STUN or TURN server's).
func (g *guard) server(ip net.IP) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.servers) < maxServers {
		g.servers[a.Unmap()] = true
	}
}

// ok reports whether a packet may go to a (dropping and counting it
// otherwise).
func (g *guard) ok(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLoopback() && g.loopback {
		return true
	}
	g.mu.Lock()
	if a == g.last && time.Since(g.lastAt) < recheck {
		g.mu.Unlock()
		return true
	}
	server := g.servers[a]
	g.mu.Unlock()
	if server || (a.IsValid() && !a.IsLoopback() && g.allow(a)) {
		g.mu.Lock()
		g.last, g.lastAt = a, time.Now()
		g.mu.Unlock()
		return true
	}
	n := g.dropped.Add(1)
	g.mu.Lock()
	first := g.logged < 4
	g.logged++
	g.mu.Unlock()
	if first {
		g.log.Info("webrtc: packet to an address off our links dropped", "to", a, "dropped", n)
	}
	return false
}

func (g *guard) okAddr(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return g.ok(ip)
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return g.ok(ip)
	case nil:
		return false
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		return err == nil && g.ok(ap.Addr())
	}
}

// guardedUDP is an ICE host socket whose every write passes the guard. A
// dropped packet reports success, as a lossy network would: pion goes on
// and the check to that address simply never succeeds.
type guardedUDP struct {
	*net.UDPConn
	g *guard
}

var _ transport.UDPConn = (*guardedUDP)(nil)

func (c *guardedUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	if !c.g.okAddr(addr) {
		return len(b), nil
	}
	return c.UDPConn.WriteTo(b, addr)
}

func (c *guardedUDP) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if addr == nil || !c.g.okAddr(addr) {
		return len(b), nil
	}
	return c.UDPConn.WriteToUDP(b, addr)
}

func (c *guardedUDP) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	if addr == nil {
		addr, _ = c.UDPConn.RemoteAddr().(*net.UDPAddr)
	}
	if addr == nil || !c.g.okAddr(addr) {
		return len(b), len(oob), nil
	}
	return c.UDPConn.WriteMsgUDP(b, oob, addr)
}

func (c *guardedUDP) WriteToUDPAddrPort(b []byte, ap netip.AddrPort) (int, error) {
	if !c.g.ok(ap.Addr()) {
		return len(b), nil
	}
	return c.UDPConn.WriteToUDPAddrPort(b, ap)
}

func (c *guardedUDP) WriteMsgUDPAddrPort(b, oob []byte, ap netip.AddrPort) (int, int, error) {
	if !c.g.ok(ap.Addr()) {
		return len(b), len(oob), nil
	}
	return c.UDPConn.WriteMsgUDPAddrPort(b, oob, ap)
}

// WriteToAddrPort and ReadFromAddrPort are pion's allocation-free path
// (ice.AddrPortReaderWriter), which it takes only for a bare
// *net.UDPConn or a conn that offers them: offered here, guarded.
func (c *guardedUDP) WriteToAddrPort(b []byte, ap netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, ap)
}

func (c *guardedUDP) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

func (c *guardedUDP) Write(b []byte) (int, error) {
	if !c.g.okAddr(c.UDPConn.RemoteAddr()) {
		return len(b), nil
	}
	return c.UDPConn.Write(b)
}

// guardedPacket is the TURN client's socket: it talks only to the TURN
// server, which the guard knows.
type guardedPacket struct {
	net.PacketConn
	g *guard
}

func (c *guardedPacket) WriteTo(b []byte, addr net.Addr) (int, error) {
	if !c.g.okAddr(addr) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}
