package discovery

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Confirmer{Port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: c}
	go srv.Serve(ln)
	defer srv.Close()

	var mu sync.Mutex
	var changes [][]netip.Addr
	o := NewOwn(OwnConfig{
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

// TestNeighboursTellBounded: a peer is told where we see it once per
// tellEvery, and a flood of made-up peers fills the record only up to
// maxTold.
func TestNeighboursTellBounded(t *testing.T) {
	var mu sync.Mutex
	told := 0
	n := NewNeighbours(NeighboursConfig{Tell: func(_ context.Context, _ netip.AddrPort, _ ident.Fingerprint) error {
		mu.Lock()
		told++
		mu.Unlock()
		return nil
	}})
	defer n.Close()
	event := func(i int) beacon.Event {
		var fp ident.Fingerprint
		fp[0], fp[1], fp[2] = 1, byte(i>>8), byte(i)
		return beacon.Event{Packet: &beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: fp, Port: 9},
			From: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 9), At: time.Now()}
	}
	n.onBeacon(event(0))
	n.onBeacon(event(0))
	eventually(t, "the peer is told once", func() bool { mu.Lock(); defer mu.Unlock(); return told == 1 })
	for i := 1; i < 3*maxTold; i++ {
		n.onBeacon(event(i))
	}
	eventually(t, "the flood is told up to the cap", func() bool { mu.Lock(); defer mu.Unlock(); return told == maxTold })
	n.mu.Lock()
	size := len(n.told)
	n.mu.Unlock()
	if size > maxTold {
		t.Fatalf("told record holds %d entries, cap %d", size, maxTold)
	}
	if got := len(n.Peers()); got != 3*maxTold {
		t.Fatalf("table has %d peers", got)
	}
}
