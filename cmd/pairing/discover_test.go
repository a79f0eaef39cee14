package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lan"
)

// threeHosts builds a LAN of hosts a, b, c (10.1.0.1-3) running serve.
func threeHosts(t *testing.T) (*lan.LAN, []*node) {
	lan.RequireRoot(t)
	bin := lan.BuildPairing(t, true)
	l := lan.New(t)
	seg := l.Segment()
	var nodes []*node
	for i, name := range []string{"a", "b", "c"} {
		h := l.Host(name)
		h.Attach(seg, fmt.Sprintf("10.1.0.%d/24", i+1))
		nodes = append(nodes, newNode(t, h, bin))
	}
	for _, n := range nodes {
		n.serve()
	}
	return l, nodes
}

func TestDiscoverThreeHosts(t *testing.T) {
	_, nodes := threeHosts(t)
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
			if p.Port == 0 || p.Source != "beacon" || p.ID == "" {
				t.Errorf("peer %s: port %d source %q id %q", m.Name, p.Port, p.Source, p.ID)
			}
		}
	}
	// The daemons found each other too, from announces.
	for _, n := range nodes {
		lan.Eventually(t, 5*time.Second, func() error {
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
	_, nodes := threeHosts(t)
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
