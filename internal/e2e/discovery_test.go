package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/lantest"
)

// threeHosts builds a LAN of hosts a, b, c (10.1.0.1-3) running serve.
func threeHosts(t *testing.T) []*node {
	bin := rootBin(t)
	_, nodes := segmentOf(t, bin, false, "a", "b", "c")
	for _, n := range nodes {
		n.serve()
	}
	return nodes
}

func TestDiscoverThreeHosts(t *testing.T) {
	nodes := threeHosts(t)
	for i, n := range nodes {
		res, stderr, code := n.discover("--timeout", "1500ms")
		if code != 0 {
			t.Fatalf("discover on %s: exit %d: %s", n.Name, code, stderr)
		}
		if len(res.Peers) != 2 {
			t.Fatalf("discover on %s found %d peers, want the other 2: %+v", n.Name, len(res.Peers), res.Peers)
		}
		for j, m := range nodes {
			if i == j {
				continue
			}
			p := peerNamed(res.Peers, m.Name)
			if p == nil {
				t.Fatalf("discover on %s: %s missing: %+v", n.Name, m.Name, res.Peers)
			}
			if want := fmt.Sprintf("10.1.0.%d", j+1); !hasAddr(p.Addresses, want) {
				t.Errorf("%s sees %s at %v, want %s among them", n.Name, m.Name, p.Addresses, want)
			}
			if want := fmt.Sprintf("10.1.0.%d", i+1); p.SeenAs.String() != want {
				t.Errorf("%s says it sees %s as %v, want %s", m.Name, n.Name, p.SeenAs, want)
			}
			if p.Port == 0 || !slices.Contains(p.Sources, "beacon") || p.ID == "" {
				t.Errorf("peer %s: port %d sources %q id %q", m.Name, p.Port, p.Sources, p.ID)
			}
		}
	}
	// The daemons found each other too, from announces.
	for _, n := range nodes {
		lantest.Eventually(t, 5*time.Second, func() error {
			st, err := n.status()
			if err != nil {
				return err
			}
			if len(st.Peers) != 2 {
				return fmt.Errorf("%s's table has %d peers", n.Name, len(st.Peers))
			}
			return nil
		})
	}
}

func TestDiscoverFirstAndText(t *testing.T) {
	nodes := threeHosts(t)
	res, stderr, code := nodes[0].discover("--first", "--timeout", "3s")
	if code != 0 || len(res.Peers) != 1 {
		t.Fatalf("discover --first: exit %d, %d peers: %s", code, len(res.Peers), stderr)
	}
	if res.DurationMS > 2000 {
		t.Errorf("--first waited %.0f ms: it should return at the first answer", res.DurationMS)
	}
	out, _, err := nodes[0].Run(nodes[0].bin, "discover", "--timeout", "1s", "--state-dir", nodes[0].state)
	if err != nil || !strings.Contains(out, "SEEN AS") || !strings.Contains(out, " b ") || !strings.Contains(out, "10.1.0.1") {
		t.Fatalf("text output: %v\n%s", err, out)
	}
}

func TestMulticastFiltered(t *testing.T) {
	l, bin := lanWith(t)
	seg := l.Segment()
	seg.FilterMulticast()
	a, b := l.Host("a"), l.Host("b")
	a.Attach(seg, "10.5.0.1/24")
	b.Attach(seg, "10.5.0.2/24")
	na, nb := newNode(t, a, bin), newNode(t, b, bin)
	nb.serve()
	res, stderr, code := na.discover("--timeout", "1s")
	if code != 1 || len(res.Peers) != 0 {
		t.Fatalf("discover through a multicast filter: exit %d, peers %+v; want exit 1 and none", code, res.Peers)
	}
	for _, want := range []string{"no device answered within 1s", "filters multicast", "QR code"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, stderr)
		}
	}
	// Unicast still works: the own address is found without peers.
	ar, stderr, code := na.addr()
	if code != 0 || !ar.has("10.5.0.1") {
		t.Fatalf("addr: exit %d, %+v: %s", code, ar.Addresses, stderr)
	}
}

func TestLinkDownMultiHomed(t *testing.T) {
	l, bin := lanWith(t)
	lan1, lan2 := l.Segment(), l.Segment()
	a, b := l.Host("a"), l.Host("b")
	a.Attach(lan1, "10.6.0.1/24")
	down := a.Attach(lan2, "10.7.0.1/24")
	b.Attach(lan1, "10.6.0.2/24")
	down.Down()
	na, nb := newNode(t, a, bin), newNode(t, b, bin)
	na.serve()
	nb.serve()
	res, stderr, code := na.addr()
	if code != 0 || !res.has("10.6.0.1") || res.has("10.7.0.1") {
		t.Fatalf("addr with eth1 down: exit %d, %+v: %s", code, res.Addresses, stderr)
	}
	sweep := res.stage(t, discovery.StageSweep)
	if d, _ := json.Marshal(sweep.Details); !strings.Contains(string(d), `{"interface":"eth1","reason":"down"}`) {
		t.Errorf("sweep details do not say eth1 is down: %v", sweep.Details)
	}
	dr, stderr, code := nb.discover("--timeout", "1s")
	if p := peerNamed(dr.Peers, "a"); code != 0 || p == nil || !hasAddr(p.Addresses, "10.6.0.1") {
		t.Fatalf("b's discover: exit %d, %+v: %s", code, dr.Peers, stderr)
	}
	// Link up again: the daemon is still there and joins the group on it.
	down.Up()
	lantest.Eventually(t, 10*time.Second, func() error {
		st, err := na.status()
		if err != nil {
			return err
		}
		if !slices.Contains(st.Beacon.Joined, "eth1/v4") {
			return errorf("beacon joined %v, want eth1/v4 after link up", st.Beacon.Joined)
		}
		return nil
	})
}

func TestGoodbye(t *testing.T) {
	nodes := threeHosts(t)
	a, b := nodes[0], nodes[1]
	peerCount := func(want int) func() error {
		return func() error {
			st, err := a.status()
			if err != nil {
				return err
			}
			if len(st.Peers) != want {
				return errorf("a's table has %d peers, want %d: %+v", len(st.Peers), want, st.Peers)
			}
			return nil
		}
	}
	lantest.Eventually(t, 5*time.Second, peerCount(2))
	start := time.Now()
	if err := b.daemon.Stop(); err != nil {
		t.Fatalf("b's daemon exit after SIGTERM: %v\n%s", err, b.daemon.Stderr())
	}
	t.Logf("b's daemon exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	// Peers expire after 90 s without news; the goodbye removes b at once.
	lantest.Eventually(t, 3*time.Second, peerCount(1))
	t.Logf("b left a's table %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(a.daemon.Stderr(), "peer left") {
		t.Errorf("a's log does not record the goodbye")
	}
}
