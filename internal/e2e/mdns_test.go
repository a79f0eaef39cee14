package e2e

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
)

// TestAvahiSeesOurService: a real mDNS stack (avahi) in another host
// browses _pairing._tcp and resolves our service.
func TestAvahiSeesOurService(t *testing.T) {
	l, bin := lanWith(t)
	lantest.RequireAvahi(t)
	seg := l.Segment()
	ha, hv := l.Host("a"), l.Host("av")
	ha.Attach(seg, "10.1.0.1/24")
	hv.Attach(seg, "10.1.0.9/24")
	a := newNode(t, ha, bin)
	a.serve()
	st, _ := a.status()
	av := hv.StartAvahi(t)
	hv.Env = av.Env()
	var line string
	lantest.Eventually(t, 10*time.Second, func() error {
		out, stderr, err := hv.Run("avahi-browse", "-rpt", "_pairing._tcp")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "=;eth0;IPv4;") {
				line = l
				return nil
			}
		}
		return errorf("avahi-browse: %v %s\n%s", err, stderr, out)
	})
	// =;eth0;IPv4;a (ABCD);_pairing._tcp;local;host.local;10.1.0.1;PORT;"n=a" "fp=…" "v=1" "id=…"
	f := strings.Split(line, ";")
	if len(f) < 10 || unescapeAvahi(f[3]) != fmt.Sprintf(`a (%s)`, st.ID[:4]) || f[7] != "10.1.0.1" || f[8] != itoa(st.Port) {
		t.Fatalf("avahi resolved %q; want instance %q at 10.1.0.1:%d", line, "a ("+st.ID[:4]+")", st.Port)
	}
	for _, kv := range []string{`"id=` + st.ID + `"`, `"v=1"`, `"n=a"`, `"fp=`} {
		if !strings.Contains(f[9], kv) {
			t.Errorf("TXT %s lacks %s", f[9], kv)
		}
	}
}

// TestDiscoverSeesAvahiPublished: a service that avahi-publish announces
// shows in `pairing discover`, from mDNS.
func TestDiscoverSeesAvahiPublished(t *testing.T) {
	l, bin := lanWith(t)
	lantest.RequireAvahi(t)
	seg := l.Segment()
	hq, hv := l.Host("q"), l.Host("av")
	hq.Attach(seg, "10.1.0.1/24")
	hv.Attach(seg, "10.1.0.9/24")
	av := hv.StartAvahi(t)
	hv.Env = av.Env()
	fp := ident.Of([]byte("a device published by avahi"))
	hv.Start("avahi-publish", "-s", "other (X)", "_pairing._tcp", "4242",
		"id="+fp.ID(), "v=1", "fp="+base64.RawURLEncoding.EncodeToString(fp[:]), "n=other")
	q := newNode(t, hq, bin)
	lantest.Eventually(t, 10*time.Second, func() error {
		res, stderr, _ := q.discover("--timeout", "1500ms")
		p := peerNamed(res.Peers, "other")
		if p == nil {
			return errorf("discover: %+v %s", res.Peers, stderr)
		}
		if p.ID != fp.ID() || p.Port != 4242 || p.Source != "mdns" || !hasAddr(p.Addresses, "10.1.0.9") {
			t.Fatalf("peer %+v", p)
		}
		return nil
	})
}

// TestOneSourceFiltered: with the beacon port dropped, mDNS still finds
// the peer; with mDNS dropped, the beacon does.
func TestOneSourceFiltered(t *testing.T) {
	for _, c := range []struct {
		drop int
		want string
	}{{27280, "mdns"}, {5353, "beacon"}} {
		t.Run(c.want+" only", func(t *testing.T) {
			l, bin := lanWith(t)
			seg := l.Segment()
			ha, hb := l.Host("a"), l.Host("b")
			ha.Attach(seg, "10.1.0.1/24")
			hb.Attach(seg, "10.1.0.2/24")
			seg.DropUDP(c.drop)
			a, b := newNode(t, ha, bin), newNode(t, hb, bin)
			a.serve()
			res, stderr, code := b.discover("--timeout", "1500ms")
			p := peerNamed(res.Peers, "a")
			if code != 0 || p == nil || !hasAddr(p.Addresses, "10.1.0.1") {
				t.Fatalf("discover with UDP %d dropped: exit %d %+v %s", c.drop, code, res.Peers, stderr)
			}
			if len(p.Sources) != 1 || p.Sources[0] != c.want {
				t.Fatalf("sources %v, want only %s", p.Sources, c.want)
			}
		})
	}
}

func TestAddressChange(t *testing.T) {
	a, b := twoHosts(t)
	b.serve()
	w := a.qr()
	if !strings.HasPrefix(w.URL, "http://10.1.0.1:") {
		t.Fatalf("url %s", w.URL)
	}
	a.Run("ip", "addr", "del", "10.1.0.1/24", "dev", "eth0")
	a.Run("ip", "addr", "add", "10.1.0.11/24", "dev", "eth0")
	lantest.Eventually(t, 5*time.Second, func() error {
		st, err := a.status()
		if err != nil {
			return err
		}
		if len(st.Addresses) == 0 || st.Addresses[0].IP.String() != "10.1.0.11" || hasAddrs(st, "10.1.0.1") {
			return errorf("a's addresses %+v", st.Addresses)
		}
		return nil
	})
	if w := a.qr(); !strings.HasPrefix(w.URL, "http://10.1.0.11:") {
		t.Fatalf("qr after the change: %s", w.URL)
	}
	// b's daemon heard the new address in an announce; b's discover too.
	lantest.Eventually(t, 5*time.Second, func() error {
		st, _ := b.status()
		if st == nil || len(st.Peers) != 1 || !hasAddr(st.Peers[0].Addresses, "10.1.0.11") {
			return errorf("b's table: %+v", st)
		}
		return nil
	})
	res, _, _ := b.discover("--timeout", "1s")
	if p := peerNamed(res.Peers, "a"); p == nil || !hasAddr(p.Addresses, "10.1.0.11") {
		t.Fatalf("b's discover: %+v", res.Peers)
	}
	if !strings.Contains(a.daemon.Stderr(), "network changed") {
		t.Error("a did not log the network change")
	}
}

func TestLinkDownAndUp(t *testing.T) {
	l, bin := lanWith(t)
	seg := l.Segment()
	ha, hb := l.Host("a"), l.Host("b")
	link := ha.Attach(seg, "10.1.0.1/24")
	hb.Attach(seg, "10.1.0.2/24")
	a, b := newNode(t, ha, bin), newNode(t, hb, bin)
	a.serve()
	link.Down()
	lantest.Eventually(t, 5*time.Second, func() error {
		st, err := a.status()
		if err != nil {
			return err
		}
		if len(st.Addresses) != 0 {
			return errorf("addresses with the link down: %+v", st.Addresses)
		}
		return nil
	})
	link.Up()
	lantest.Eventually(t, 10*time.Second, func() error {
		res, _, _ := b.discover("--timeout", "500ms")
		if p := peerNamed(res.Peers, "a"); p == nil || !hasAddr(p.Addresses, "10.1.0.1") {
			return errorf("b does not find a after link up: %+v", res.Peers)
		}
		return nil
	})
	select {
	case <-a.daemon.Done():
		t.Fatal("the daemon exited")
	default:
	}
}

// TestObservedAddress: x finds no address by itself (stages 1-3 fail: no
// private address, no IPv6, no route, no peer yet). When y appears, x
// confirms 100.64.0.2 at once (long before its own 10 s retry): its stage
// 3 asks y, which sees x's packets come from there, and y, seeing x's
// beacon list no address, would tell x after a grace of 0.5 s.
func TestObservedAddress(t *testing.T) {
	bin := rootBin(t)
	x, y := peerOnlyLAN(t, bin)
	x.serve()
	if st, _ := x.status(); len(st.Addresses) != 0 {
		t.Fatalf("x found an address alone: %+v", st.Addresses)
	}
	start := time.Now()
	y.serve()
	lantest.Eventually(t, 5*time.Second, func() error {
		st, err := x.status()
		if err != nil {
			return err
		}
		if len(st.Addresses) != 1 || st.Addresses[0].IP.String() != "100.64.0.2" {
			return errorf("x's addresses %+v", st.Addresses)
		}
		return nil
	})
	t.Logf("x confirmed 100.64.0.2 %s after y started", time.Since(start).Round(time.Millisecond))
	// Another host reached x there: the proof.
	st, _ := x.status()
	if !hasProof(st, "100.64.0.2", discovery.ProofReached) {
		t.Fatalf("x's address lacks y's proof: %s", addrDump(st))
	}
}

// unescapeAvahi undoes avahi-browse -p's escaping: \DDD is a decimal byte.
func unescapeAvahi(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.Atoi(s[i+1 : i+4]); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
