package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// confirmServer serves a Confirmer on 127.0.0.1 only.
func confirmServer(t *testing.T) *Confirmer {
	c, _ := serveConfirmer(t)
	return c
}

// serveConfirmer is confirmServer with its server, to stop it early.
func serveConfirmer(t *testing.T) (*Confirmer, *http.Server) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Confirmer{Port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: c}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c, srv
}

func TestConfirmerPing(t *testing.T) {
	c := confirmServer(t)
	ctx := context.Background()
	ev, err := c.Ping(ctx, netip.MustParseAddr("127.0.0.1"))
	if err != nil || !strings.HasPrefix(ev.Local, "127.0.0.1:") || len(ev.Nonce) != 32 {
		t.Fatalf("Ping(own address) = %+v, %v", ev, err)
	}
	// Another process's listener answers, but it never saw our nonce.
	other := confirmServer(t)
	c2 := &Confirmer{Port: other.Port}
	if _, err := c2.Ping(ctx, netip.MustParseAddr("127.0.0.1")); !errors.Is(err, ErrOtherHost) {
		t.Fatalf("Ping answered by another listener = %v, want ErrOtherHost", err)
	}
	// Nothing listens on 127.0.0.2 at that port: refused.
	if _, err := c.Ping(ctx, netip.MustParseAddr("127.0.0.2")); !errors.Is(err, ErrNotAddressable) {
		t.Fatalf("Ping(unreachable) = %v, want ErrNotAddressable", err)
	}
}

// confirmStatus is the status a fresh Confirmer answers to a self-ping
// with the raw query q, arriving on 127.0.0.1.
func confirmStatus(q string) int {
	r := httptest.NewRequest("GET", ConfirmPath, nil)
	r.URL.RawQuery = q
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}))
	w := httptest.NewRecorder()
	(&Confirmer{}).ServeHTTP(w, r)
	return w.Code
}

func TestConfirmerRejectsBadRequests(t *testing.T) {
	for _, q := range []string{"", "nonce=abc&addr=127.0.0.1", "nonce=" + strings.Repeat("a", 32) + "&addr=nope", "nonce=" + strings.Repeat("a", 32) + "&addr=127.0.0.1"} {
		if code := confirmStatus(q); code < 400 {
			t.Errorf("%q answered %d", q, code)
		}
	}
}

func FuzzConfirmRequest(f *testing.F) {
	f.Add("nonce=" + strings.Repeat("a", 32) + "&addr=127.0.0.1")
	f.Add("addr=fe80::1%25eth0&nonce=zz")
	f.Fuzz(func(t *testing.T, query string) {
		if code := confirmStatus(query); code < 400 {
			t.Fatalf("%q confirmed with no pending nonce: %d", query, code)
		}
	})
}

func TestAcquireStagesOnLoopback(t *testing.T) {
	c := confirmServer(t)
	a := &Acquirer{
		Confirmer:    c,
		Interfaces:   func() ([]net.Interface, error) { return nil, nil },
		RouteTargets: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")},
		Peers: func(context.Context) ([]Report, error) {
			return []Report{{SeenAs: netip.MustParseAddr("127.0.0.2"), PeerID: "P"}}, nil
		},
	}
	res := a.Acquire(context.Background())
	if len(res.Stages) != 3 || res.Stages[0].Status != StatusPass || res.Stages[1].Status != StatusFail || res.Stages[2].Status != StatusSkip {
		t.Fatalf("stages %+v", res.Stages)
	}
	if !errors.Is(res.Stages[1].Err(), ErrNoCandidates) {
		t.Fatalf("sweep error %v, want ErrNoCandidates", res.Stages[1].Err())
	}
	if len(res.Addresses) != 1 || res.Addresses[0].IP.String() != "127.0.0.1" || res.FirstMS <= 0 {
		t.Fatalf("addresses %+v first %v", res.Addresses, res.FirstMS)
	}

	// Stage 1 has no route, stage 2 nothing: stage 3 runs, and a report
	// that does not reach our listener is not used.
	a.RouteTargets = []netip.AddrPort{}
	res = a.Acquire(context.Background())
	if s := res.Stages[2]; s.Status != StatusFail || !errors.Is(s.Err(), ErrNotAddressable) || len(res.Addresses) != 0 {
		t.Fatalf("stage 3 %+v, addresses %+v", s, res.Addresses)
	}
	a.Peers = func(context.Context) ([]Report, error) {
		return []Report{{SeenAs: netip.MustParseAddr("127.0.0.2"), PeerID: "P"}, {SeenAs: netip.MustParseAddr("127.0.0.1"), PeerID: "Q"}}, nil
	}
	res = a.Acquire(context.Background())
	if len(res.Addresses) != 1 || res.Addresses[0].Stage != StagePeer || res.Addresses[0].IP.String() != "127.0.0.1" {
		t.Fatalf("addresses %+v", res.Addresses)
	}
}

func TestRankAddresses(t *testing.T) {
	now := time.Now()
	links := map[string]LinkFacts{
		"eth0":  {Name: "eth0", Kind: "device", Class: ClassLAN, Carrier: true, Why: "Ethernet"},
		"eth1":  {Name: "eth1", Kind: "device", Class: ClassLAN, Carrier: false, OperState: "down"},
		"tun0":  {Name: "tun0", Kind: "tuntap", Class: ClassTunnel, Carrier: true, Gateway: true},
		"lxdbr": {Name: "lxdbr", Kind: "bridge", Class: ClassVirtual, Carrier: true},
		"veth9": {Name: "veth9", Kind: "veth", Class: ClassLAN, Carrier: true},
	}
	ip := netip.MustParseAddr
	self := []Proof{{Kind: ProofSelf, At: now}}
	addrs := []Address{
		{IP: ip("10.8.0.2"), Interface: "tun0", Proofs: self},  // the VPN holds the default route: stage 1 first
		{IP: ip("10.9.0.1"), Interface: "lxdbr", Proofs: self}, // a bridge with any name
		{IP: ip("192.168.1.5"), Interface: "eth1", Proofs: self},
		{IP: ip("fe80::1%eth0"), Interface: "eth0", Proofs: self},
		{IP: ip("192.168.0.7"), Interface: "eth0", Proofs: self},
		{IP: ip("172.17.0.2"), Interface: "veth9", Proofs: []Proof{{Kind: ProofReached, At: now.Add(-time.Minute), By: "ABCD", Trust: TrustPaired}, self[0]}},
		{IP: ip("10.0.0.9"), Interface: "gone", Proofs: self},
		{IP: ip("10.1.0.1"), Interface: "eth0", Proofs: []Proof{{Kind: ProofUnreached, At: now, By: "EFGH", Detail: "timeout", Trust: TrustPaired}, self[0]}},
		// A stranger's reach and one verified device's not-reached move
		// nothing: link facts decide.
		{IP: ip("10.3.0.1"), Interface: "eth0", Proofs: []Proof{{Kind: ProofReached, At: now, By: "10.3.0.9", Trust: TrustStranger}, self[0]}},
		{IP: ip("10.4.0.1"), Interface: "eth0", Proofs: []Proof{{Kind: ProofUnreached, At: now, By: "IJKL", Detail: "timeout", Trust: TrustVerified}, self[0]}},
		// Two devices that "agree" it is not reached, contradicted by a
		// later reach (a connection that really arrived): claims lose.
		{IP: ip("10.6.0.1"), Interface: "eth0", Proofs: []Proof{{Kind: ProofUnreached, At: now.Add(-2 * time.Second), By: "Q1", Detail: "timeout", Trust: TrustVerified},
			{Kind: ProofUnreached, At: now.Add(-2 * time.Second), By: "Q2", Detail: "timeout", Trust: TrustVerified},
			{Kind: ProofReached, At: now.Add(-time.Second), By: "Q3", Trust: TrustVerified}, self[0]}},
		// A device that proved its key reached it: first among equals.
		{IP: ip("10.5.0.1"), Interface: "eth0", Proofs: []Proof{{Kind: ProofReached, At: now, By: "MNOP", Trust: TrustVerified}, self[0]}},
		{IP: ip("10.2.0.1"), Interface: "eth0", Proofs: []Proof{{Kind: ProofReached, At: now.Add(-ReachedFresh - time.Second)}, self[0]}},
	}
	rankAddresses(addrs, links, now)
	var got []string
	for _, a := range addrs {
		got = append(got, fmt.Sprintf("%s:%d", a.IP, a.Rank))
	}
	want := []string{"172.17.0.2:1", "10.6.0.1:2", "10.5.0.1:2", "192.168.0.7:2", "10.3.0.1:2", "10.4.0.1:2", "10.2.0.1:2", "fe80::1%eth0:2", "10.0.0.9:3", "10.8.0.2:4", "10.9.0.1:4", "192.168.1.5:4", "10.1.0.1:4"}
	if !slices.Equal(got, want) {
		t.Fatalf("ranked\n%v\nwant\n%v", got, want)
	}
	for _, a := range addrs {
		if a.RankReason == "" {
			t.Errorf("%s has no rank reason", a.IP)
		}
	}
	if r := addrs[9].RankReason; !strings.Contains(r, "tun0") || !strings.Contains(r, "cannot reach") {
		t.Errorf("the VPN's reason: %q", r)
	}
	// A timeout is no evidence of a firewall: the reason says what
	// happened, and blames nothing.
	if r := addrs[12].RankReason; !strings.Contains(r, "EFGH") || !strings.Contains(r, "nothing arrived") || strings.Contains(r, "firewall") {
		t.Errorf("the unreached address's reason: %q", r)
	}
}

func TestTable(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := &Table{TTL: 90 * time.Second, Now: func() time.Time { return now }}
	var fp ident.Fingerprint
	fp[0] = 1
	ev := func(typ beacon.Type, inst uint64, from string, seen string) beacon.Event {
		p := &beacon.Packet{Type: typ, Instance: inst, Fingerprint: fp, Name: "b", Port: 7, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}
		if seen != "" {
			p.SeenAs = netip.MustParseAddr(seen)
		}
		return beacon.Event{Packet: p, From: netip.MustParseAddrPort(from), At: now}
	}
	tb.Observe(beacon.Event{Packet: &beacon.Packet{Type: beacon.TypeQuery}, From: netip.MustParseAddrPort("10.0.0.9:1"), At: now})
	if len(tb.Peers()) != 0 {
		t.Fatal("an anonymous querier became a peer")
	}
	tb.Self[0] = 9
	tb.Observe(beacon.Event{Packet: &beacon.Packet{Type: beacon.TypeQuery, Fingerprint: tb.Self}, From: netip.MustParseAddrPort("10.0.0.1:1"), At: now})
	if len(tb.Peers()) != 0 {
		t.Fatal("our own query made us our own peer")
	}
	tb.Observe(ev(beacon.TypeReply, 1, "[fe80::2%eth0]:5", "fe80::1"))
	tb.Observe(ev(beacon.TypeReply, 1, "10.0.0.2:5", "10.0.0.1"))
	tb.Observe(ev(beacon.TypeReply, 1, "[fe80::2%eth0]:5", "fe80::1"))
	ps := tb.Peers()
	if len(ps) != 1 || ps[0].SeenAs.String() != "10.0.0.1" || len(ps[0].Addresses) != 2 || ps[0].ID != fp.ID() {
		t.Fatalf("peers %+v", ps)
	}
	// A restart (new instance) forgets old addresses.
	e := ev(beacon.TypeAnnounce, 2, "10.0.0.3:5", "")
	e.Packet.Addrs = nil
	tb.Observe(e)
	if ps := tb.Peers(); len(ps[0].Addresses) != 1 || ps[0].Addresses[0].String() != "10.0.0.3" {
		t.Fatalf("after restart: %+v", ps[0].Addresses)
	}
	now = now.Add(91 * time.Second)
	if len(tb.Peers()) != 0 {
		t.Fatal("peer did not expire")
	}
	now = now.Add(-91 * time.Second)
	tb.Observe(ev(beacon.TypeAnnounce, 2, "10.0.0.3:5", ""))
	tb.Observe(ev(beacon.TypeGoodbye, 2, "10.0.0.3:5", ""))
	if len(tb.Peers()) != 0 {
		t.Fatal("goodbye did not remove the peer")
	}
	// An announce of that run read after its goodbye (the other family's
	// socket) does not bring it back; the next run (new instance) does.
	if in, _ := tb.Observe(ev(beacon.TypeAnnounce, 2, "[fe80::2%eth0]:5", "")); in || len(tb.Peers()) != 0 {
		t.Fatal("a packet sent before the goodbye brought the peer back")
	}
	if in, _ := tb.Observe(ev(beacon.TypeAnnounce, 3, "10.0.0.3:5", "")); !in {
		t.Fatal("the restarted peer was refused")
	}
	now = now.Add(goneFor)
	if in, _ := tb.Observe(ev(beacon.TypeAnnounce, 2, "10.0.0.3:5", "")); !in {
		t.Fatal("the goodbye was remembered past goneFor")
	}
	// A flood of goodbyes keeps the record bounded.
	for i := range 10 * maxGone {
		tb.Observe(ev(beacon.TypeGoodbye, uint64(100+i), "10.0.0.3:5", ""))
	}
	if len(tb.gone) > maxGone {
		t.Fatalf("%d goodbyes remembered", len(tb.gone))
	}
}

// TestTableLinkLocals: a beacon lists the peer's link-local addresses of
// all its links; only the packet's source is known to be of the link it
// came by, so a listed one is kept only as the source, with that link's
// zone (one of the peer's other link, zoned to this one, was dialled and
// met silence, and diag blamed a firewall).
func TestTableLinkLocals(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := &Table{TTL: 90 * time.Second, Now: func() time.Time { return now }}
	var fp ident.Fingerprint
	fp[0] = 1
	other, own := netip.MustParseAddr("fe80::b1"), netip.MustParseAddr("fe80::b0")
	ev := func(from string) beacon.Event {
		p := &beacon.Packet{Type: beacon.TypeAnnounce, Instance: 1, Fingerprint: fp, Name: "b", Port: 7,
			Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2"), other, own, netip.MustParseAddr("10.1.0.2")}}
		return beacon.Event{Packet: p, From: netip.MustParseAddrPort(from), Interface: "eth0", At: now}
	}
	tb.Observe(ev("10.0.0.2:5"))
	if got := fmt.Sprint(tb.Peers()[0].Addresses); got != "[10.0.0.2 10.1.0.2]" {
		t.Fatalf("from an IPv4 source: %s, want no link-local", got)
	}
	tb.Observe(ev("[fe80::b0]:5"))
	if got := fmt.Sprint(tb.Peers()[0].Addresses); got != "[10.0.0.2 10.1.0.2 fe80::b0%eth0]" {
		t.Fatalf("from a link-local source: %s, want it alone, zoned", got)
	}
}
