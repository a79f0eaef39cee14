package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/lantest"
)

func TestAddrPreferredWithDefaultRoute(t *testing.T) {
	l, bin := lanWith(t)
	h := l.Host("a")
	h.Attach(l.Segment(), "10.2.0.1/24")
	h.DefaultRoute("10.2.0.254") // nobody owns it: connect works, nothing leaves
	res, stderr, code := newNode(t, h, bin).addr()
	if code != 0 {
		t.Fatalf("addr: exit %d: %s", code, stderr)
	}
	if s := res.stage(t, discovery.StagePreferred); s.Status != discovery.StatusPass {
		t.Fatalf("stage 1 = %s (%s), want pass", s.Status, s.Error)
	}
	if a := res.Addresses[0]; a.IP.String() != "10.2.0.1" || a.Stage != discovery.StagePreferred || a.Interface != "eth0" {
		t.Fatalf("best address = %+v, want 10.2.0.1 on eth0 from stage preferred", a)
	}
	if s := res.stage(t, discovery.StagePeer); s.Status != discovery.StatusSkip {
		t.Errorf("stage 3 = %s, want skip once an address is confirmed", s.Status)
	}
	// The human form names every stage.
	out, _, err := h.Run(bin, "addr")
	for _, want := range []string{"stage 1 preferred", "stage 2 sweep", "stage 3 peer", "10.2.0.1", "confirmed"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("text output lacks %q (err %v):\n%s", want, err, out)
		}
	}
}

func TestAddrNoDefaultRoute(t *testing.T) {
	res, stderr, code := loneNode(t, "10.2.0.1/24").addr()
	if code != 0 {
		t.Fatalf("addr: exit %d: %s", code, stderr)
	}
	s1 := res.stage(t, discovery.StagePreferred)
	if s1.Status != discovery.StatusFail || !strings.Contains(s1.Error, "network is unreachable") {
		t.Fatalf("stage 1 = %s %q, want fail with network is unreachable", s1.Status, s1.Error)
	}
	if s2 := res.stage(t, discovery.StageSweep); s2.Status != discovery.StatusPass || !res.has("10.2.0.1") {
		t.Fatalf("stage 2 = %s, addresses %+v: want pass with 10.2.0.1", s2.Status, res.Addresses)
	}
}

func TestAddrInboundDroppedOnPreferred(t *testing.T) {
	l, bin := lanWith(t)
	h := l.Host("a")
	h.Attach(l.Segment(), "10.3.0.1/24")
	h.Attach(l.Segment(), "10.4.0.1/24")
	h.DefaultRoute("10.3.0.254")
	h.DropInboundTCP("10.3.0.1")
	res, stderr, code := newNode(t, h, bin).addr()
	if code != 0 {
		t.Fatalf("addr: exit %d: %s", code, stderr)
	}
	s1 := res.stage(t, discovery.StagePreferred)
	if s1.Status != discovery.StatusFail || !strings.Contains(s1.Error, "not addressable") || !strings.Contains(s1.Error, "10.3.0.1") {
		t.Fatalf("stage 1 = %s %q, want fail: 10.3.0.1 not addressable", s1.Status, s1.Error)
	}
	if res.has("10.3.0.1") {
		t.Fatalf("firewalled 10.3.0.1 was confirmed: %+v", res.Addresses)
	}
	if s2 := res.stage(t, discovery.StageSweep); s2.Status != discovery.StatusPass {
		t.Fatalf("stage 2 = %s %q", s2.Status, s2.Error)
	}
	if a := res.Addresses[0]; a.IP.String() != "10.4.0.1" || a.Interface != "eth1" || a.Stage != discovery.StageSweep {
		t.Fatalf("best address = %+v, want 10.4.0.1 on eth1 from the sweep", a)
	}
}

// peerOnlyLAN: host x has only a non-private address, no IPv6 and no
// default route, so stages 1 and 2 find nothing; host y is an ordinary
// neighbour. Neither runs a daemon yet.
func peerOnlyLAN(t *testing.T, bin string) (x, y *node) {
	l := lantest.New(t)
	seg := l.Segment()
	hx, hy := l.Host("x"), l.Host("y")
	hx.DisableIPv6()
	hx.Attach(seg, "100.64.0.2/24")
	hy.Attach(seg, "100.64.0.3/24")
	return newNode(t, hx, bin), newNode(t, hy, bin)
}

func TestAddrPeerStage(t *testing.T) {
	bin := rootBin(t)
	x, y := peerOnlyLAN(t, bin)
	y.serve()
	res, stderr, code := x.addr()
	if code != 0 {
		t.Fatalf("addr: exit %d: %s\n%+v", code, stderr, res)
	}
	for _, st := range []string{discovery.StagePreferred, discovery.StageSweep} {
		if s := res.stage(t, st); s.Status != discovery.StatusFail {
			t.Fatalf("stage %s = %s, want fail", st, s.Status)
		}
	}
	s3 := res.stage(t, discovery.StagePeer)
	if s3.Status != discovery.StatusPass || len(res.Addresses) != 1 || !res.has("100.64.0.2") || res.Addresses[0].Stage != discovery.StagePeer {
		t.Fatalf("stage 3 = %s %q, addresses %+v: want 100.64.0.2 from a peer", s3.Status, s3.Error, res.Addresses)
	}
	if !strings.Contains(res.Addresses[0].Evidence, "seen by") {
		t.Errorf("evidence %q does not name the peer", res.Addresses[0].Evidence)
	}
}

func TestDaemonPeerStage(t *testing.T) {
	bin := rootBin(t)
	x, y := peerOnlyLAN(t, bin)
	y.serve()
	x.serve()
	lantest.Eventually(t, 5*time.Second, func() error {
		st, err := x.status()
		if err != nil {
			return err
		}
		if len(st.Addresses) != 1 || st.Addresses[0].IP.String() != "100.64.0.2" || st.Addresses[0].Stage != discovery.StagePeer {
			return errorf("daemon addresses = %+v, want 100.64.0.2 from stage peer", st.Addresses)
		}
		if len(st.Peers) != 1 || st.Peers[0].Name != "y" {
			return errorf("daemon peers = %+v, want y alone (never itself)", st.Peers)
		}
		return nil
	})
}

func TestAddrNothingReachable(t *testing.T) {
	l, bin := lanWith(t)
	h := l.Host("a")
	h.DisableIPv6()
	h.Attach(l.Segment(), "100.64.0.2/24")
	res, stderr, code := newNode(t, h, bin).addr()
	if code != 1 || len(res.Addresses) != 0 {
		t.Fatalf("addr: exit %d, addresses %+v; want exit 1 and none", code, res.Addresses)
	}
	if s := res.stage(t, discovery.StagePeer); s.Status != discovery.StatusFail || !strings.Contains(s.Error, "no peer answered") {
		t.Fatalf("stage 3 = %s %q", s.Status, s.Error)
	}
	if !strings.HasPrefix(stderr, "pairing: no reachable own address found; hint:") {
		t.Fatalf("stderr = %q", stderr)
	}
}
