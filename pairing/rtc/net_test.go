package rtc

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The ICE sockets get 4 MiB buffers: all of it with CAP_NET_ADMIN (root
// here), else up to net.core.rmem_max, with a warning when that is less.
func TestICESocketBuffers(t *testing.T) {
	var logs bytes.Buffer
	n, err := newNet(slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rcv, snd int
	raw, _ := c.(*net.UDPConn).SyscallConn()
	raw.Control(func(fd uintptr) {
		rcv, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	want := UDPBuffer
	if os.Geteuid() != 0 {
		max, err := UDPBufferLimit()
		if err != nil {
			t.Skip(err)
		}
		want = min(want, max)
	}
	// Linux reports twice what was set.
	if rcv/2 < want || snd/2 < want {
		t.Errorf("buffers: receive %d, send %d bytes (kernel-doubled); want at least %d usable", rcv, snd, want)
	}
	if limited := strings.Contains(logs.String(), "limits UDP receive buffers"); limited != (want < UDPBuffer) {
		t.Errorf("warning logged: %v, buffer limited: %v; log: %s", limited, want < UDPBuffer, logs.String())
	}
}
