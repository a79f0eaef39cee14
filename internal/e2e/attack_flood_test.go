package e2e

// Floods from a stranger: idle connections and made-up announces.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
)

// TestAttackConnectionFlood: 1,200 idle connections from 8 sources
// against a daemon with 512 descriptors. The listener caps them, never
// dies, and answers a join once the flood stops.
func TestAttackConnectionFlood(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	const nSrc = 8
	a, b, x := attackLAN(t, nSrc)
	a.wrap = []string{"prlimit", "--nofile=512:512", "--"}
	a.serve()
	target := "10.1.0.1:" + strconv.Itoa(a.port())
	out := x.RunTest(t, "TestHelperAttackFlood", "ATTACK_TARGET="+target, "ATTACK_SOURCES="+sources(nSrc), "ATTACK_N=1200")
	r := result(t, out)
	t.Logf("flood: %v", r)
	// 512 descriptors: at most 128 connections held, 16 per source.
	if r["held"] > 128 || r["held"] == 0 || r["max_per_source"] > 16 {
		t.Fatalf("held %d connections (max 128), %d from one source (max 16)", r["held"], r["max_per_source"])
	}
	if !strings.Contains(a.daemon.Stderr(), "listener: too many connections; refusing") {
		t.Fatal("the refusals are not logged")
	}
	// The flood is over: the listener answers at once.
	w := a.qr()
	if _, stderr, code := b.join(w.URL); code != 0 {
		t.Fatalf("join after the flood: %s", stderr)
	}
	if st, err := a.status(); err != nil || len(st.Addresses) == 0 {
		t.Fatalf("a lost its addresses: %v %+v", err, st)
	}
}

func TestHelperAttackFlood(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackConnectionFlood")
	}
	target := os.Getenv("ATTACK_TARGET")
	n, _ := strconv.Atoi(os.Getenv("ATTACK_N"))
	srcs := strings.Split(os.Getenv("ATTACK_SOURCES"), ",")
	var conns []net.Conn
	bySrc := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		src := srcs[i%len(srcs)]
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", target)
		if err != nil {
			continue
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Still open after a while: the daemon holds it.
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := c.Read(make([]byte, 1))
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				mu.Lock()
				bySrc[src]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	held, most := 0, 0
	for _, k := range bySrc {
		held += k
		most = max(most, k)
	}
	printResult(t, map[string]int{"dialled": len(conns), "held": held, "max_per_source": most})
	time.Sleep(200 * time.Millisecond) // the daemon sees the closes
}

// TestAttackBeaconFlood: 20,000 announces of made-up devices, and one
// device announcing thousands of addresses, all from a source they do not
// list. The peer table, its addresses, status and the daemon's memory
// stay bounded, a paired peer stays listed, and the daemon dials the
// spoofer only a handful of times.
func TestAttackBeaconFlood(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, _, x := pairedAttackLAN(t)
	// Count the TCP connections a opens to anyone but itself.
	if _, stderr, err := a.RunInput(`table inet syns { chain out { type filter hook output priority 0; ip daddr != 10.1.0.1 tcp flags & (syn|ack) == syn counter; }; }`, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v %s", err, stderr)
	}
	before := rssMB(t, a.daemon.Pid())
	out := x.RunTest(t, "TestHelperAttackBeacon", "ATTACK_TARGET=10.1.0.1")
	t.Logf("%v", result(t, out))
	time.Sleep(500 * time.Millisecond)
	raw, _, _ := a.Run(a.bin, "status", "--json", "--socket", a.socket)
	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 20,000 fake announces and goodbyes: %d peers listed, %d omitted, %d refused, status %d bytes", len(st.Peers), st.PeersOmitted, st.Beacon.PeersRefused, len(raw))
	if len(st.Peers) > 64 || len(st.Peers)+st.PeersOmitted > 256 || st.Beacon.PeersRefused == 0 || len(raw) > 256<<10 {
		t.Fatalf("table not bounded: %d listed, %d omitted, %d refused, %d bytes", len(st.Peers), st.PeersOmitted, st.Beacon.PeersRefused, len(raw))
	}
	if len(st.Peers) == 0 || st.Peers[0].Name != "b" {
		t.Fatal("the paired peer b is not listed first")
	}
	for _, p := range st.Peers {
		if len(p.Addresses) > 16 {
			t.Fatalf("%s has %d addresses", p.Name, len(p.Addresses))
		}
	}
	// The race detector's shadow memory inflates RSS; the growth is
	// what a flood costs.
	if rss := rssMB(t, a.daemon.Pid()); rss-before > 30 {
		t.Fatalf("RSS grew from %.1f to %.1f MB in the flood", before, rss)
	} else {
		t.Logf("RSS %.1f MB before the flood, %.1f MB after", before, rss)
	}
	cnt, _, _ := a.Run("nft", "list", "table", "inet", "syns")
	m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(cnt)
	if m == nil {
		t.Fatalf("no counter: %s", cnt)
	}
	if syns, _ := strconv.Atoi(m[1]); syns > 20 {
		t.Fatalf("a opened %d TCP connections because of spoofed announces (at most 20)", syns)
	} else {
		t.Logf("%d TCP connections opened by a during the flood", syns)
	}
}

func TestHelperAttackBeacon(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackBeaconFlood")
	}
	c, err := net.Dial("udp", net.JoinHostPort(os.Getenv("ATTACK_TARGET"), strconv.Itoa(beacon.DefaultPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := 0
	send := func(p *beacon.Packet) {
		b, err := p.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err == nil {
			sent++
		}
	}
	// One device with ever new addresses, then 20,000 made-up devices.
	var one ident.Fingerprint
	one[0] = 0xee
	for i := range 2000 {
		var addrs []netip.Addr
		for j := range beacon.MaxAddrs {
			addrs = append(addrs, netip.AddrFrom4([4]byte{10, 1, byte(i >> 4), byte(i<<4 | j)}))
		}
		send(&beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: one, Instance: 1, Port: 9, Name: "one", Addrs: addrs})
	}
	for i := range 20000 {
		var fp ident.Fingerprint
		fp[0], fp[1], fp[2] = 0xaa, byte(i>>8), byte(i)
		send(&beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: fp, Instance: uint64(i + 1), Port: 9, Name: fmt.Sprintf("fake%d", i),
			Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.200")}})
		if i%500 == 0 {
			time.Sleep(5 * time.Millisecond) // do not overrun the socket buffers: the daemon must see them
		}
	}
	// And 20,000 goodbyes of made-up runs: the daemon remembers a goodbye
	// for a while (a late beacon of that run must not bring it back), in
	// a bounded record.
	for i := range 20000 {
		var fp ident.Fingerprint
		fp[0], fp[1], fp[2] = 0xbb, byte(i>>8), byte(i)
		send(&beacon.Packet{Type: beacon.TypeGoodbye, Fingerprint: fp, Instance: uint64(i + 1)})
		if i%500 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	printResult(t, map[string]int{"sent": sent})
}
