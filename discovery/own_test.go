package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within 5 s: %s", what)
}

// TestOwnObservedAddresses: an address a peer reports is used only once
// our listener received a nonce there, is kept across acquisitions while
// it still answers, and forgotten when it stops answering; every change
// reaches OnChange, in order.
func TestOwnObservedAddresses(t *testing.T) {
	c, srv := serveConfirmer(t)

	var mu sync.Mutex
	var changes [][]netip.Addr
	if err := NewOwn(OwnConfig{Acquirer: &Acquirer{}}).Observed(netip.MustParseAddr("127.0.0.1"), "peer"); !errors.Is(err, ErrNotOwn) {
		t.Fatalf("a loopback observation: %v", err)
	}
	o := NewOwn(OwnConfig{
		// On loopback here: the test's own addresses are 127.0.0.0/8.
		IsOwn: func(a netip.Addr) bool { return a.IsLoopback() },
		Acquirer: &Acquirer{Confirmer: c, Interfaces: func() ([]net.Interface, error) { return nil, nil },
			RouteTargets: []netip.AddrPort{}},
		OnChange: func(addrs []Address, _ []Stage) {
			mu.Lock()
			changes = append(changes, ips(addrs))
			mu.Unlock()
		},
	})
	o.Start()
	defer o.Close()
	<-o.Acquired()
	if got := o.IPs(); len(got) != 0 {
		t.Fatalf("addresses with no stage finding any: %v", got)
	}
	ip := netip.MustParseAddr("127.0.0.1")
	o.Observed(netip.MustParseAddr("127.0.0.2"), "peer") // nothing of ours answers there
	o.Observed(ip, "peer")
	eventually(t, "the observed address is confirmed", func() bool { return slices.Equal(o.IPs(), []netip.Addr{ip}) })
	addrs, _, changed := o.Addresses()
	if addrs[0].Stage != StagePeer || !addrs[0].Confirmed || changed.IsZero() {
		t.Fatalf("address %+v changed %v", addrs[0], changed)
	}

	o.Reacquire() // still answers: kept
	time.Sleep(100 * time.Millisecond)
	if got := o.IPs(); !slices.Equal(got, []netip.Addr{ip}) {
		t.Fatalf("after a re-acquisition: %v", got)
	}
	srv.Close() // stops answering: forgotten at the next acquisition
	o.Reacquire()
	eventually(t, "the dead address is forgotten", func() bool { return len(o.IPs()) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if want := [][]netip.Addr{{ip}, nil}; !slices.EqualFunc(changes, want, slices.Equal) {
		t.Fatalf("OnChange saw %v, want %v", changes, want)
	}
	o.Close()
	o.Close()
}

// tellingNeighbours is a Neighbours whose calls telling peers where we see
// them are recorded, not made.
func tellingNeighbours(t *testing.T) (*Neighbours, func() []netip.AddrPort) {
	var mu sync.Mutex
	var told []netip.AddrPort
	n := NewNeighbours(NeighboursConfig{Tell: func(_ context.Context, to netip.AddrPort, _ ident.Fingerprint) error {
		mu.Lock()
		told = append(told, to)
		mu.Unlock()
		return nil
	}})
	t.Cleanup(n.Close)
	return n, func() []netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(told)
	}
}

// TestTellWaitsForAddresses: a peer whose beacon lists no address of its
// own (it has just started) is told where we see it only if it still
// lists none after tellGrace; one that announces them in the meantime is
// not called at all.
func TestTellWaitsForAddresses(t *testing.T) {
	n, calls := tellingNeighbours(t)
	event := func(id byte, from string, addrs ...netip.Addr) beacon.Event {
		var fp ident.Fingerprint
		fp[0] = id
		return beacon.Event{Packet: &beacon.Packet{Type: beacon.TypeAnnounce, Instance: 1, Fingerprint: fp, Port: 9, Addrs: addrs},
			From: netip.AddrPortFrom(netip.MustParseAddr(from), 9), At: time.Now()}
	}
	starting, silent := netip.MustParseAddr("fe80::5"), "fe80::6%lo"
	n.onBeacon(event(5, "fe80::5%lo"))
	n.onBeacon(event(6, silent))
	time.Sleep(tellGrace / 5)
	if c := calls(); len(c) != 0 {
		t.Fatalf("told before the grace: %v", c)
	}
	n.onBeacon(event(5, "fe80::5%lo", starting)) // its addresses came
	time.Sleep(tellGrace)
	if c := calls(); len(c) != 1 || c[0].Addr().String() != silent {
		t.Fatalf("calls %v, want one to %s", c, silent)
	}
}

// TestNeighboursTellBounded: a flood of announces from made-up devices at
// addresses they do not list: the table takes a burst of them, and the
// peers are told where we see them at most tellBurst times at once;
// off-link sources are never called; the record of whom we told is capped.
func TestNeighboursTellBounded(t *testing.T) {
	n, calls := tellingNeighbours(t)
	event := func(i int, from string) beacon.Event {
		var fp ident.Fingerprint
		fp[0], fp[1], fp[2] = 1, byte(i>>8), byte(i)
		return beacon.Event{Packet: &beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: fp, Port: 9},
			From: netip.AddrPortFrom(netip.MustParseAddr(from), 9), At: time.Now()}
	}
	n.onBeacon(event(0, "203.0.113.7")) // off-link: never dialled
	n.onBeacon(event(1, "fe80::1%lo"))
	n.onBeacon(event(1, "fe80::1%lo")) // told already
	for i := 2; i < 5000; i++ {
		n.onBeacon(event(i, "fe80::2%lo"))
	}
	n.tell.mu.Lock()
	pending := len(n.tell.pending)
	n.tell.mu.Unlock()
	if pending > maxPending {
		t.Fatalf("%d peers wait to be told, cap %d", pending, maxPending)
	}
	time.Sleep(tellGrace + 100*time.Millisecond) // they list no address: told after the grace
	told := calls()
	if len(told) == 0 || len(told) > tellBurst+1 {
		t.Fatalf("%d calls for a flood, want 1 to %d", len(told), tellBurst+1)
	}
	for _, c := range told {
		if !c.Addr().IsLinkLocalUnicast() {
			t.Fatalf("called an off-link address: %v", c)
		}
	}
	if got := len(n.Peers()); got > newPeerBurst+1 {
		t.Fatalf("table has %d peers after a flood, burst %d", got, newPeerBurst)
	}
	if n.table.Refused() == 0 {
		t.Fatal("no refusal counted")
	}
	// The record of whom we told never passes maxTold.
	now := time.Now()
	for i := range 3 * maxTold {
		n.tell.mu.Lock()
		n.tell.rate = rate.NewLimiter(rate.Inf, 1)
		n.tell.mu.Unlock()
		var fp ident.Fingerprint
		fp[0], fp[1] = byte(i>>8), byte(i)
		n.tell.shouldTell(fp, fp.String(), now)
	}
	if size := len(n.tell.told); size > maxTold {
		t.Fatalf("told record holds %d entries, cap %d", size, maxTold)
	}
}

// TestTableCaps: the table keeps at most Max peers, evicting unpaired
// ones first, and at most maxPeerAddrs addresses per peer.
func TestTableCaps(t *testing.T) {
	var paired ident.Fingerprint
	paired[0] = 9
	tb := &Table{Max: 4, Paired: func(f ident.Fingerprint) bool { return f == paired }}
	tb.arrival = rate.NewLimiter(rate.Inf, 1)
	ev := func(fp ident.Fingerprint, from netip.Addr) beacon.Event {
		return beacon.Event{Packet: &beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: fp, Name: "x"}, From: netip.AddrPortFrom(from, 9), At: time.Now()}
	}
	tb.Observe(ev(paired, netip.MustParseAddr("10.0.0.9")))
	for i := range 100 {
		var fp ident.Fingerprint
		fp[0], fp[1] = 1, byte(i)
		tb.Observe(ev(fp, netip.MustParseAddr("10.0.0.1")))
		// One device, many spoofed sources.
		tb.Observe(ev(paired, netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})))
	}
	ps := tb.Peers()
	if len(ps) != 4 || !slices.ContainsFunc(ps, func(p Peer) bool { return p.Fingerprint == paired }) {
		t.Fatalf("table %d peers, paired kept: %v", len(ps), ps)
	}
	for _, p := range ps {
		if len(p.Addresses) > maxPeerAddrs {
			t.Fatalf("%s has %d addresses", p.ID, len(p.Addresses))
		}
	}
}

// TestOwnReached: a connection from another host to one of our addresses
// is the strongest proof: the address gets it and shows up even when no
// stage confirmed it, but only a paired or pairing device ranks it first;
// a stranger's is kept and moves nothing. A not-reached moves the rank
// only from a paired device or from two identified devices that agree.
// Our own connections (a self-ping) prove nothing; the proofs kept are
// capped.
func TestOwnReached(t *testing.T) {
	mine := netip.MustParseAddr("192.0.2.10")
	o := NewOwn(OwnConfig{
		IsOwn: func(a netip.Addr) bool { return a == mine },
		Acquirer: &Acquirer{Confirmer: &Confirmer{}, Interfaces: func() ([]net.Interface, error) { return nil, nil },
			RouteTargets: []netip.AddrPort{}},
	})
	o.Start()
	defer o.Close()
	<-o.Acquired()
	o.Reached(mine, mine, "self", "http /confirm", TrustPaired)
	o.Reached(mine, netip.MustParseAddr("127.0.0.1"), "self", "http /confirm", TrustPaired)
	time.Sleep(50 * time.Millisecond)
	if got := o.IPs(); len(got) != 0 {
		t.Fatalf("our own connections proved %v", got)
	}
	rank := func() Address {
		addrs, _, _ := o.Addresses()
		if len(addrs) != 1 {
			return Address{}
		}
		return addrs[0]
	}
	o.Reached(mine, netip.MustParseAddr("192.0.2.30"), "192.0.2.30", "http /nothing", TrustStranger)
	eventually(t, "the address a stranger reached is listed", func() bool { return len(o.IPs()) == 1 })
	if a := rank(); a.Rank == RankReached {
		t.Fatalf("a stranger's request ranked the address first: %+v", a)
	}
	o.Reached(mine, netip.MustParseAddr("192.0.2.20"), "PEER-ID", "tls /v1/observed", TrustPaired)
	eventually(t, "the address a paired device reached ranks first", func() bool { return rank().Rank == RankReached })
	a := rank()
	if !strings.Contains(a.RankReason, "PEER-ID") {
		t.Fatalf("reached address: %+v", a)
	}
	if p, ok := a.latest(func(p Proof) bool { return p.Kind == ProofReached && p.Trusted() }); !ok || p.By != "PEER-ID" || p.Via != "tls /v1/observed" || !strings.Contains(p.Detail, "192.0.2.20") {
		t.Fatalf("proof: %+v", a.Proofs)
	}
	// A stranger's and one identified device's not-reached move nothing.
	o.NotReached(mine, "STRANGER", TrustStranger, ProbeTimeout)
	o.NotReached(mine, "ONE", TrustVerified, ProbeTimeout)
	time.Sleep(100 * time.Millisecond)
	if a := rank(); a.Rank != RankReached {
		t.Fatalf("one device's not-reached moved the rank: %+v", a)
	}
	// A second identified device that agrees does.
	o.NotReached(mine, "TWO", TrustVerified, ProbeProhibited)
	eventually(t, "two that agree demote it", func() bool { return rank().Rank == RankDemoted })
	if a := rank(); !strings.Contains(a.RankReason, "not-reached") && !strings.Contains(a.RankReason, "nothing arrived") && !strings.Contains(a.RankReason, "prohibited") {
		t.Fatalf("reason: %q", a.RankReason)
	}
	// A paired device's reach wins again; then its own not-reached
	// demotes alone.
	o.Reached(mine, netip.MustParseAddr("192.0.2.20"), "PEER-ID", "tls /v1/connect", TrustPaired)
	eventually(t, "a later paired reach ranks it first", func() bool { return rank().Rank == RankReached })
	o.NotReached(mine, "PEER-ID", TrustPaired, ProbeTimeout)
	eventually(t, "a paired device's not-reached demotes it", func() bool { return rank().Rank == RankDemoted })
	// A flood of strangers' proofs never pushes out the identified ones.
	for i := range 50 {
		o.Reached(mine, netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}), fmt.Sprint(i), "http /p", TrustStranger)
	}
	o.mu.Lock()
	kept := slices.Clone(o.proofs[mine])
	o.mu.Unlock()
	if len(kept) > maxProofs || !slices.ContainsFunc(kept, func(p Proof) bool { return p.By == "PEER-ID" && p.Kind == ProofUnreached }) {
		t.Fatalf("proofs after a flood: %+v", kept)
	}
	// Proofs for more addresses than a host has are not kept: those of
	// addresses we no longer have make room.
	for i := range 200 {
		o.NotReached(netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i % 250)}), "X", TrustPaired, ProbeTimeout)
	}
	o.mu.Lock()
	n := len(o.proofs)
	o.mu.Unlock()
	if n > maxObserved {
		t.Fatalf("%d addresses' proofs kept, cap %d", n, maxObserved)
	}
}

// TestBrowseBacksOff: mDNS browsing slows down (every device answers
// every browse) unless mDNS sees a peer the beacon does not, or nobody.
func TestBrowseBacksOff(t *testing.T) {
	var waits []time.Duration
	w := browseEvery / 2
	for range 8 {
		w = nextBrowse(w, false)
		waits = append(waits, w)
	}
	want := []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, browseMax, browseMax, browseMax}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if got := nextBrowse(browseMax, true); got != browseEvery {
		t.Fatalf("a peer seen by mDNS only: wait %s, want %s", got, browseEvery)
	}
	// A peer that mDNS alone found keeps the browsing fast; once the
	// beacon sees it too, it no longer does.
	n := NewNeighbours(NeighboursConfig{})
	defer n.Close()
	var fp ident.Fingerprint
	fp[0] = 7
	ev := beacon.Event{Packet: &beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: fp, Port: 9, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.7")}},
		From: netip.MustParseAddrPort("10.0.0.7:5353"), At: time.Now()}
	if !n.table.mdnsNeeded() {
		t.Fatal("an empty table (nobody answers a browse) does not keep the browsing fast")
	}
	n.table.ObserveFrom(SourceMDNS, ev)
	if !n.table.mdnsNeeded() {
		t.Fatal("a peer seen by mDNS only does not keep the browsing fast")
	}
	ev.Packet.Instance = 1
	n.table.ObserveFrom(SourceBeacon, ev)
	if n.table.mdnsNeeded() {
		t.Fatal("a peer the beacon sees too keeps the browsing fast")
	}
}
