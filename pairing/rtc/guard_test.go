package rtc

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/ice/v4"
)

// pion writes through the allocation-free path when a conn offers it:
// the guarded conn offers it, guarded.
var _ ice.AddrPortReaderWriter = (*guardedUDP)(nil)

// TestGuard: a guarded ICE socket drops packets to an address its Allow
// refuses (in any form), counts them, and lets through the allowed ones
// and the servers pion resolved through the same Net.
func TestGuard(t *testing.T) {
	lan := netip.MustParseAddr("192.0.2.1")
	g := newGuard(func(a netip.Addr) bool { return a == lan }, false, slog.New(slog.DiscardHandler))
	for a, want := range map[string]bool{"192.0.2.1": true, "::ffff:192.0.2.1": true, "203.0.113.5": false,
		"::ffff:203.0.113.5": false, "127.0.0.1": false, "::1": false, "": false} {
		ip, _ := netip.ParseAddr(a)
		if got := g.ok(ip); got != want {
			t.Errorf("%q: allowed %v, want %v", a, got, want)
		}
	}
	dropped := g.dropped.Load()

	n, err := newNet(slog.New(slog.DiscardHandler), g)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*guardedUDP); !ok {
		t.Fatalf("ListenUDP gave a %T, want the guarded conn", c)
	}
	r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	to := r.LocalAddr().(*net.UDPAddr)
	// Loopback is refused here (no Loopback in the config): every way of
	// writing drops the packet, and says it was sent.
	gc := c.(*guardedUDP)
	for i, write := range []func() (int, error){
		func() (int, error) { return c.WriteTo([]byte("x"), to) },
		func() (int, error) { return c.WriteToUDP([]byte("x"), to) },
		func() (int, error) { n, _, err := c.WriteMsgUDP([]byte("x"), nil, to); return n, err },
		func() (int, error) { return gc.WriteToAddrPort([]byte("x"), to.AddrPort()) },
	} {
		if n, err := write(); n != 1 || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if got := g.dropped.Load() - dropped; got != 4 {
		t.Fatalf("%d packets dropped, want 4", got)
	}
	// Once pion resolved it (as it does a STUN or TURN server), it is
	// allowed: the first packet that arrives is this one.
	if _, err := n.ResolveUDPAddr("udp4", to.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.WriteToAddrPort([]byte("server"), to.AddrPort()); err != nil {
		t.Fatal(err)
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	k, _, err := r.ReadFromUDP(buf)
	if err != nil || string(buf[:k]) != "server" {
		t.Fatalf("received %q, %v; want only the packet to the server", buf[:k], err)
	}
}
