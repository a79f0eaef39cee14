package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/diag"
	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/lantest"
)

// reflected is a home network of subnets joined by a router that
// reflects mDNS (avahi-daemon with enable-reflector=yes): subnet i is
// 10.<i+1>.0.0/24 (and fd00:<i+1>::/64), the router is .254 (::fe) on
// each, host i is .<i+1> (::<i+1>) with its routes via the router.
type reflected struct {
	router    *lantest.Host
	reflector *lantest.Reflector
	nodes     []*node
	segs      []*lantest.Segment
}

func reflectedLAN(t *testing.T, names ...string) *reflected { return reflectedLANv(t, true, names...) }

// reflectedLANv is reflectedLAN, IPv6 only unless v4.
func reflectedLANv(t *testing.T, v4 bool, names ...string) *reflected {
	l, bin := lanWith(t)
	lantest.RequireAvahi(t)
	r := &reflected{router: l.Host("r")}
	var ifaces []string
	for i, name := range names {
		seg := l.Segment()
		r.segs = append(r.segs, seg)
		rc := []string{fmt.Sprintf("fd00:%d::fe/64", i+1)}
		hc := []string{fmt.Sprintf("fd00:%d::%d/64", i+1, i+1)}
		if v4 {
			rc = append(rc, fmt.Sprintf("10.%d.0.254/24", i+1))
			hc = append(hc, fmt.Sprintf("10.%d.0.%d/24", i+1, i+1))
		}
		lk := r.router.Attach(seg, rc...)
		ifaces = append(ifaces, lk.Name)
		h := l.Host(name)
		h.Attach(seg, hc...)
		if v4 {
			h.DefaultRoute(fmt.Sprintf("10.%d.0.254", i+1))
		}
		h.Must("ip", "-6", "route", "add", "default", "via", fmt.Sprintf("fd00:%d::fe", i+1))
		r.nodes = append(r.nodes, newNode(t, h, bin))
	}
	lantest.Router(r.router)
	r.reflector = lantest.StartReflector(t, r.router, ifaces...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reflector log:\n%s", r.reflector.Proc.Stderr())
		}
	})
	return r
}

// TestMDNSThroughReflector: a and b on two subnets joined by a router
// with an mDNS reflector find each other by mDNS, at each other's own
// address; the answer is marked as coming from another subnet through a
// reflector, both ways: our legacy unicast query relayed by its ID (the
// answer carries it), and our multicast query from port 5353 repeated,
// with the answers repeated to the group. (The beacon has TTL 1 and
// stays on its subnet.)
func TestMDNSThroughReflector(t *testing.T) {
	r := reflectedLAN(t, "a", "b")
	a, b := r.nodes[0], r.nodes[1]
	a.serve()
	b.serve()
	for _, c := range []struct {
		from   *node
		to, at string
	}{{a, "b", "10.2.0.2"}, {b, "a", "10.1.0.1"}} {
		vias := map[string]bool{}
		lantest.Eventually(t, 20*time.Second, func() error {
			res, stderr, _ := c.from.discover("--timeout", "3s")
			p := peerNamed(res.Peers, c.to)
			if p == nil || !hasAddr(p.Addresses, c.at) {
				return errorf("discover on %s: %+v %s", c.from.Name, res.Peers, stderr)
			}
			if len(p.Sources) != 1 || p.Sources[0] != discovery.SourceMDNS {
				t.Errorf("%s found %s by %v, want mdns only (beacons do not cross a router)", c.from.Name, c.to, p.Sources)
			}
			if err := checkReflected(p, c.at); err != nil {
				return err
			}
			for _, ans := range p.MDNS {
				vias[ans.Via] = true
			}
			if !vias[discovery.MDNSViaLegacy] || !vias[discovery.MDNSViaMulticast] {
				return errorf("%s found %s only via %v: %+v", c.from.Name, c.to, vias, p.MDNS)
			}
			t.Logf("%s found %s through the reflector after %.0f ms", c.from.Name, c.to, p.ElapsedMS)
			return nil
		})
	}
	// diag says the reflector carries discovery across, blames nothing
	// but the router the test built, and pairing by QR code works.
	rep := a.runDiag(t, "")
	if f := findingOf(rep, "mdns-reflector"); f == nil {
		b, _ := json.MarshalIndent(rep.Findings, "", " ")
		t.Errorf("no mdns-reflector finding:\n%s", b)
	}
	for _, st := range rep.Steps {
		if strings.Contains(st.Hint, "does not cross routers") || strings.Contains(st.Error, "does not cross routers") {
			t.Errorf("step %s says discovery does not cross routers, though the reflector carries it: %+v", st.Name, st)
		}
	}
	noBlame(t, rep, diag.CauseRouter)
	if !rep.OK {
		t.Errorf("diag not ok across a reflector")
	}
}

// TestMDNSReflectorThreeSubnets: three subnets behind one reflector. a
// and b (on two of them) find each other, and avahi-browse, a standard
// mDNS client, on the third resolves both services at their own
// addresses through the reflector.
func TestMDNSReflectorThreeSubnets(t *testing.T) {
	r := reflectedLAN(t, "a", "b", "v")
	a, b, v := r.nodes[0], r.nodes[1], r.nodes[2]
	a.serve()
	b.serve()
	lantest.Eventually(t, 20*time.Second, func() error {
		res, stderr, _ := a.discover("--timeout", "3s")
		p := peerNamed(res.Peers, "b")
		if p == nil || !hasAddr(p.Addresses, "10.2.0.2") {
			return errorf("discover on a: %+v %s", res.Peers, stderr)
		}
		return checkReflected(p, "10.2.0.2")
	})
	av := v.StartAvahi(t)
	v.Env = av.Env()
	lantest.Eventually(t, 20*time.Second, func() error {
		out, stderr, err := v.Run("avahi-browse", "-rpt", "_pairing._tcp")
		// =;eth0;IPv4;a (ABCD);_pairing._tcp;local;host.local;10.1.0.1;PORT;TXT
		found := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Split(l, ";")
			if len(f) >= 10 && f[0] == "=" && f[2] == "IPv4" {
				found[strings.SplitN(unescapeAvahi(f[3]), " ", 2)[0]+"@"+f[7]] = true
			}
		}
		if !found["a@10.1.0.1"] || !found["b@10.2.0.2"] {
			return errorf("avahi-browse on v resolved %v: %v %s\n%s", found, err, stderr, out)
		}
		return nil
	})
}

// TestMDNSReflectorIPv6Only: the same across an IPv6-only router: a and
// b find each other at their ULA addresses (their link-local ones, which
// the reflector repeats too, are dropped: they are on another link).
func TestMDNSReflectorIPv6Only(t *testing.T) {
	r := reflectedLANv(t, false, "a", "b")
	a, b := r.nodes[0], r.nodes[1]
	a.serve()
	b.serve()
	for _, c := range []struct {
		from   *node
		to, at string
	}{{a, "b", "fd00:2::2"}, {b, "a", "fd00:1::1"}} {
		lantest.Eventually(t, 20*time.Second, func() error {
			res, stderr, _ := c.from.discover("--timeout", "3s")
			p := peerNamed(res.Peers, c.to)
			if p == nil || !hasAddr(p.Addresses, c.at) {
				return errorf("discover on %s: %+v %s", c.from.Name, res.Peers, stderr)
			}
			for _, ad := range p.Addresses {
				if ad.IsLinkLocalUnicast() {
					t.Fatalf("%s kept %s's link-local address %s from another link: %+v", c.from.Name, c.to, ad, p)
				}
			}
			return checkReflected(p, c.at)
		})
	}
}

// checkReflected checks the mDNS facts of a peer on another subnet: off
// link, reflected, its address off link.
func checkReflected(p *discovery.Peer, at string) error {
	if len(p.MDNS) == 0 {
		return errorf("peer %s has no mDNS facts: %+v", p.Name, p)
	}
	for _, ans := range p.MDNS {
		if !ans.OffLink || !ans.Reflected || !strings.HasSuffix(ans.Sender.String(), ".254") && !strings.HasSuffix(ans.Sender.String(), "::fe") && !ans.Sender.IsLinkLocalUnicast() {
			return errorf("answer %+v: want off link, reflected by the router", ans)
		}
		for _, ad := range ans.Addresses {
			if ad.Addr.String() == at && ad.OnLink {
				return errorf("answer %+v: %s marked on link", ans, at)
			}
		}
	}
	return nil
}

// TestAvahiSameHostSeesOurService: avahi-daemon on the same host as the
// daemon resolves our service (both share port 5353; our answers to its
// queries go to the group, which every socket on the port hears).
func TestAvahiSameHostSeesOurService(t *testing.T) {
	l, bin := lanWith(t)
	lantest.RequireAvahi(t)
	ha := l.Host("a")
	ha.Attach(l.Segment(), "10.1.0.1/24")
	a := newNode(t, ha, bin)
	av := ha.StartAvahi(t)
	a.serve()
	env := ha.Env
	ha.Env = append(env, av.Env()...)
	defer func() { ha.Env = env }()
	lantest.Eventually(t, 15*time.Second, func() error {
		out, stderr, err := ha.Run("avahi-browse", "-rpt", "_pairing._tcp")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Split(l, ";"); len(f) >= 10 && f[0] == "=" && f[2] == "IPv4" && f[7] == "10.1.0.1" {
				return nil
			}
		}
		return errorf("avahi-browse on a: %v %s\n%s", err, stderr, out)
	})
}
