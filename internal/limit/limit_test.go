package limit

import (
	"net/netip"
	"testing"
	"time"
)

func TestKeyGroupsIPv6By64(t *testing.T) {
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if Key(a) != Key(b) || Key(a) == Key(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Fatal("IPv6 sources are not keyed by /64")
	}
	if Key(netip.MustParseAddr("::ffff:10.0.0.1")) != netip.MustParseAddr("10.0.0.1") {
		t.Fatal("mapped IPv4 not unmapped")
	}
}

func TestPerSourceBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := &PerSource{Rate: 1.0 / 60, Burst: 2, Max: 8}
	src := netip.MustParseAddr("10.0.0.1")
	if !p.Allow(src, now) || !p.Allow(src, now) || p.Allow(src, now) {
		t.Fatal("burst of 2 not enforced")
	}
	// A flood of other sources (a whole /48 of IPv6, many IPv4) never
	// grows the map past Max, and the limited source stays limited: full
	// buckets go first, then the least recently seen.
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		p.Allow(a, now)
		p.Allow(a, now)
		p.Allow(src, now)
	}
	if n := p.Len(); n > 8 {
		t.Fatalf("%d sources remembered, max 8", n)
	}
	if p.Has(src, now) {
		t.Fatal("the limited source got its tokens back through a flood")
	}
	if !p.Has(src, now.Add(2*time.Minute)) {
		t.Fatal("the bucket does not refill")
	}
}

func TestConns(t *testing.T) {
	c := &Conns{PerSource: 2, Total: 3}
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if !c.Open(a) || !c.Open(a) || c.Open(a) {
		t.Fatal("per-source limit")
	}
	if !c.Open(b) || c.Open(b) {
		t.Fatal("total limit")
	}
	c.Close(a)
	if !c.Open(b) || c.Count() != 3 {
		t.Fatal("a closed connection frees its slot")
	}
}
