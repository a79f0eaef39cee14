package beacon

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// memNet is a LAN in memory: every memTransport attached to it gets the
// others' multicasts, and unicasts by address.
type memNet struct {
	mu    sync.Mutex
	peers map[netip.AddrPort]*memTransport
}

// memTransport is a transport in memory, so the protocol runs without
// sockets. Handlers run on the sender's goroutine.
type memTransport struct {
	lan    *memNet
	addr   netip.AddrPort
	mu     sync.Mutex
	handle func(Datagram)
	closed bool
}

func (n *memNet) attach(addr string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.peers == nil {
		n.peers = map[netip.AddrPort]*memTransport{}
	}
	t := &memTransport{lan: n, addr: netip.MustParseAddrPort(addr)}
	n.peers[t.addr] = t
	return t
}

func (t *memTransport) deliver(d Datagram) {
	t.mu.Lock()
	h := t.handle
	if t.closed {
		h = nil
	}
	t.mu.Unlock()
	if h != nil {
		h(d)
	}
}

func (t *memTransport) others() []*memTransport {
	t.lan.mu.Lock()
	defer t.lan.mu.Unlock()
	var out []*memTransport
	for _, p := range t.lan.peers {
		if p != t {
			out = append(out, p)
		}
	}
	return out
}

func (t *memTransport) Listen(h func(Datagram)) { t.mu.Lock(); t.handle = h; t.mu.Unlock() }
func (t *memTransport) Multicast(b []byte) (int, error) {
	for _, p := range t.others() {
		p.deliver(Datagram{Data: slices.Clone(b), From: t.addr, Interface: "mem0", Multicast: true})
	}
	return 1, nil
}
func (t *memTransport) Unicast(b []byte, to netip.AddrPort, v6 bool) error {
	for _, p := range t.others() {
		if p.addr == to {
			p.deliver(Datagram{Data: slices.Clone(b), From: t.addr, Interface: "mem0"})
		}
	}
	return nil
}
func (t *memTransport) Join() int        { return 1 }
func (t *memTransport) Joined() []string { return []string{"mem0/v4"} }
func (t *memTransport) Close()           { t.mu.Lock(); t.closed = true; t.mu.Unlock() }

// TestProtocolInMemory: the protocol over an in-memory transport answers
// a query with what it says about itself and where it saw the querier,
// drops what Accept refuses, and says goodbye on Close.
func TestProtocolInMemory(t *testing.T) {
	defer goleak.VerifyNone(t)
	var lan memNet
	var fp Fingerprint
	fp[0] = 0x42
	var mu sync.Mutex
	var seen []Type
	cfg := Config{
		Fingerprint: fp, ReplyDelayMax: time.Millisecond,
		Self: func() Self {
			return Self{Name: "mem", Port: 4242, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
		},
		Accept: func(a netip.Addr) bool { return a != netip.MustParseAddr("10.0.0.66") },
	}
	cfg.setDefaults()
	b := start(cfg, lan.attach("10.0.0.1:27280"), &counters{})

	// A listener on the group sees the start query and announce.
	listener := lan.attach("10.0.0.3:27280")
	listener.Listen(func(d Datagram) {
		if p, err := Decode(d.Data); err == nil {
			mu.Lock()
			seen = append(seen, p.Type)
			mu.Unlock()
		}
	})

	qcfg := Config{ReplyDelayMax: time.Millisecond}
	qcfg.setDefaults()
	var got *Event
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := query(ctx, qcfg, lan.attach("10.0.0.2:40000"), &counters{}, func(ev Event) bool { got = &ev; return false })
	cancel()
	if err != nil || got == nil {
		t.Fatalf("query: %v, %v", got, err)
	}
	if got.Packet.Fingerprint != fp || got.Packet.Name != "mem" || got.Packet.Port != 4242 {
		t.Fatalf("reply %+v", got.Packet)
	}
	if got.Packet.SeenAs != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("seen-as %v, want the querier's address", got.Packet.SeenAs)
	}

	// A unicast query from a source Accept refuses is dropped as off_link.
	q, _ := (&Packet{Type: TypeQuery, Instance: 7}).Append(nil)
	lan.attach("10.0.0.66:1").Unicast(q, netip.MustParseAddrPort("10.0.0.1:27280"), false)
	if d := b.Stats().Dropped["off_link"]; d != 1 {
		t.Fatalf("off_link drops %d, want 1", d)
	}

	b.Close()
	b.Close() // twice is fine
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[0] != TypeQuery || seen[len(seen)-1] != TypeGoodbye {
		t.Fatalf("listener saw %v, want a query first and a goodbye last", seen)
	}
}
