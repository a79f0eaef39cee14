package rtc

import (
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
	"golang.org/x/sys/unix"
)

// udpBuffer is the kernel buffer asked for each ICE socket. The default
// (about 208 KiB on Linux) overflows during a file transfer: the burst
// of SCTP packets outruns the reading goroutine now and then, the kernel
// drops datagrams, and SCTP halves its window for each loss.
const udpBuffer = 4 << 20

// bufferedNet is pion's standard network with larger socket buffers.
type bufferedNet struct {
	*stdnet.Net
	log *slog.Logger
}

func newNet(log *slog.Logger) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return bufferedNet{n, log}, nil
}

// limitedOnce logs a too-small buffer once per process, not per session.
var limitedOnce sync.Once

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n bufferedNet) grow(c any) {
	if got := growBuffers(c); got < udpBuffer {
		limitedOnce.Do(func() {
			n.log.Warn("webrtc: the kernel limits UDP receive buffers; large transfers may lose packets and slow down",
				"got_bytes", got, "want_bytes", udpBuffer, "hint", "sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304")
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
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], udpBuffer) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], udpBuffer)
			}
		}
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
			got = v / 2
		}
	})
	return got
}
