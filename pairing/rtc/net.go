package rtc

import (
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"golang.org/x/sys/unix"
)

// UDPBuffer is the kernel buffer asked for each ICE socket. The default
// (about 208 KiB on Linux) overflows during a file transfer: the burst
// of SCTP packets outruns the reading goroutine now and then, the kernel
// drops datagrams, and SCTP halves its window for each loss.
const UDPBuffer = 4 << 20

// BufferHint says how to lift the kernel's limit on socket buffers.
const BufferHint = "sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 (make install puts this in /etc/sysctl.d/60-pairing.conf)"

// UDPBufferLimit is the largest socket buffer a process without
// CAP_NET_ADMIN may ask for: net.core.rmem_max.
func UDPBufferLimit() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// bufferedNet is pion's standard network with larger socket buffers,
// and with a send guard on the ICE sockets when g is set (see guard).
type bufferedNet struct {
	*stdnet.Net
	log *slog.Logger
	g   *guard
}

func newNet(log *slog.Logger, g *guard) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return bufferedNet{n, log, g}, nil
}

// limitedOnce logs a too-small buffer once per process, not per session.
var limitedOnce sync.Once

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	n.grow(c)
	// The mDNS socket (bound to the group's port) stays bare: x/net's
	// ipv4.PacketConn needs the *net.UDPConn itself, and in query-only
	// mode it sends only to the group.
	if uc, ok := c.(*net.UDPConn); ok && n.g != nil && (laddr == nil || (laddr.Port != mdnsPort && !laddr.IP.IsMulticast())) {
		return &guardedUDP{UDPConn: uc, g: n.g}, nil
	}
	return c, nil
}

// mdnsPort is mDNS's port.
const mdnsPort = 5353

// ResolveUDPAddr, ResolveTCPAddr: pion resolves through the Net only the
// configured STUN and TURN servers (and the mDNS group): the guard lets
// packets to them through.
func (n bufferedNet) ResolveUDPAddr(network, address string) (*net.UDPAddr, error) {
	a, err := n.Net.ResolveUDPAddr(network, address)
	if err == nil && n.g != nil {
		n.g.server(a.IP)
	}
	return a, err
}

func (n bufferedNet) ResolveTCPAddr(network, address string) (*net.TCPAddr, error) {
	a, err := n.Net.ResolveTCPAddr(network, address)
	if err == nil && n.g != nil {
		n.g.server(a.IP)
	}
	return a, err
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	n.grow(c)
	if n.g != nil {
		return &guardedPacket{PacketConn: c, g: n.g}, nil
	}
	return c, nil
}

func (n bufferedNet) grow(c any) {
	if got := growBuffers(c); got < UDPBuffer {
		limitedOnce.Do(func() {
			n.log.Warn("webrtc: the kernel limits UDP receive buffers; large transfers may lose packets and slow down",
				"got_bytes", got, "want_bytes", UDPBuffer, "hint", BufferHint)
		})
	}
}

// growBuffers raises the receive and send buffers of a UDP socket to
// 4 MiB: past the system limit (net.core.rmem_max) when the process may
// (CAP_NET_ADMIN), else as far as the limit allows. It returns the
// receive buffer the socket has now (the usable part: Linux reports
// twice the size, half of it for its own bookkeeping), or -1 when c has
// no socket.
func growBuffers(c any) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	got := -1
	raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], UDPBuffer) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], UDPBuffer)
			}
		}
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
			got = v / 2
		}
	})
	return got
}
