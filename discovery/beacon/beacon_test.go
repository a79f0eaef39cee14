package beacon

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/internal/lantest"
)

// TestBeaconInNamespace runs the beacon engine for real in a host of a
// simulated LAN (the test binary re-runs itself there).
func TestBeaconInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperBeacon"))
}

func TestHelperBeacon(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestBeaconInNamespace")
	}
	defer goleak.VerifyNone(t)
	var fp Fingerprint
	fp[0] = 0xAB
	b, err := New(Config{
		Fingerprint: fp,
		Self:        func() Self { return Self{Name: "helper", Port: 4242} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Hostile input to the group port: every kind is dropped and counted.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	group := net.UDPAddrFromAddrPort(netip.AddrPortFrom(DefaultGroup4, DefaultPort))
	good, _ := (&Packet{Type: TypeQuery, Instance: 99}).Append(nil)
	wrongVersion := append([]byte(nil), good...)
	wrongVersion[4] = 2
	hostile := map[string][]byte{
		"short":     good[:10],
		"magic":     []byte("GET / HTTP/1.1\r\n\r\n garbage garbage garbage garbage garbage garbage"),
		"version":   wrongVersion,
		"too_large": make([]byte, 1400),
		"field":     append(append([]byte(nil), good...), fieldAddress, 9, 1),
	}
	for _, p := range hostile {
		if _, err := c.WriteTo(p, group); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(b.Stats().Dropped) == len(hostile) })
	for reason := range hostile {
		if b.Stats().Dropped[reason] != 1 {
			t.Errorf("dropped %v, want one %q", b.Stats().Dropped, reason)
		}
	}

	// Our own announces come back by multicast loop and are dropped.
	waitFor(t, func() bool { return b.Stats().Own > 0 })

	// It still answers a query, with the address the query came from.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	var got *Event
	err = Query(ctx, Config{}, func(ev Event) bool { got = &ev; return false })
	cancel()
	if err != nil || got == nil {
		t.Fatalf("query after hostile input: %v, %v", got, err)
	}
	if got.Packet.Fingerprint != fp || got.Packet.Name != "helper" || got.Packet.Port != 4242 {
		t.Fatalf("reply %+v", got.Packet)
	}
	if got.Packet.SeenAs != netip.MustParseAddr("10.9.0.1") && !got.Packet.SeenAs.IsLinkLocalUnicast() {
		t.Fatalf("seen-as %v, want the query's source", got.Packet.SeenAs)
	}

	// A flood of queries from one source gets a bounded number of replies.
	const flood = 300
	for range flood {
		c.WriteTo(good, group)
	}
	replies := 0
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		if p, err := Decode(buf[:n]); err == nil && p.Type == TypeReply {
			replies++
		}
	}
	if replies == 0 || replies > replyBurst+15 {
		t.Fatalf("%d queries got %d replies; want 1..%d (rate limit)", flood, replies, replyBurst+15)
	}
	if b.Stats().RateLimited == 0 {
		t.Fatalf("no query counted as rate limited")
	}
	t.Logf("flood of %d queries: %d replies, stats %+v", flood, replies, b.Stats())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Close() // twice is fine
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBeaconOffLinkInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperBeaconOffLink"))
}

// TestHelperBeaconOffLink: a unicast packet from a source Accept refuses
// is dropped as off_link; the same packet to the group is taken.
func TestHelperBeaconOffLink(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestBeaconOffLinkInNamespace")
	}
	defer goleak.VerifyNone(t)
	var fp Fingerprint
	fp[0] = 0xAC
	me := netip.MustParseAddr("10.9.0.1")
	b, err := New(Config{Fingerprint: fp, Accept: func(a netip.Addr) bool { return a != me }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: me.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q, _ := (&Packet{Type: TypeQuery, Instance: 77}).Append(nil)
	c.WriteTo(q, net.UDPAddrFromAddrPort(netip.AddrPortFrom(me, DefaultPort)))
	waitFor(t, func() bool { return b.Stats().Dropped["off_link"] == 1 })
	c.WriteTo(q, net.UDPAddrFromAddrPort(netip.AddrPortFrom(DefaultGroup4, DefaultPort)))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no reply to a query sent to the group: %v", err)
		}
		if p, err := Decode(buf[:n]); err == nil && p.Type == TypeReply {
			break
		}
	}
	if d := b.Stats().Dropped["off_link"]; d != 1 {
		t.Fatalf("off_link drops %d, want 1", d)
	}
}
