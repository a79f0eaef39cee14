package e2e

// The networks that break pairing (issue 13), one test each, built in
// namespaces. Each asserts two things: the QR code's first host is
// reachable from a peer on the LAN (a real TCP connect from the peer's
// namespace), and diag's verdicts and hints for that situation.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/diag"
	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/lantest"
)

// qrReachable asks a for a QR code and connects from peer's namespace to
// the URL's host and port; it returns the host.
func qrReachable(t *testing.T, a, peer *node) string {
	t.Helper()
	w := a.qr()
	u, err := url.Parse(w.URL)
	if err != nil {
		t.Fatalf("QR URL %q: %v", w.URL, err)
	}
	_, stderr, err := peer.Run("timeout", "3", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", u.Hostname(), u.Port()))
	if err != nil {
		st, _ := a.status()
		t.Fatalf("the QR code's first host %s (%s) is not reachable from %s: %v %s\naddresses: %s", u.Host, w.URL, peer.Name, err, stderr, addrDump(st))
	}
	return u.Hostname()
}

func addrDump(st *status) string {
	if st == nil {
		return "(no status)"
	}
	b, _ := json.MarshalIndent(st.Addresses, "", " ")
	return string(b)
}

// waitBest waits until n's best address is ip and returns the status.
func waitBest(t *testing.T, n *node, ip string) *status {
	t.Helper()
	var st *status
	lantest.Eventually(t, 10*time.Second, func() error {
		var err error
		if st, err = n.status(); err != nil {
			return err
		}
		if len(st.Addresses) == 0 || st.Addresses[0].IP.String() != ip {
			return fmt.Errorf("best address of %s is not %s: %s", n.Name, ip, addrDump(st))
		}
		return nil
	})
	return st
}

// hasProof reports whether the address ip in st carries a proof of kind.
func hasProof(st *status, ip, kind string) bool {
	for _, a := range st.Addresses {
		if a.IP.String() == ip {
			for _, p := range a.Proofs {
				if p.Kind == kind {
					return true
				}
			}
		}
	}
	return false
}

// lanPair: hosts a and b on one segment (10.1.0.1, .2/24), b serving
// with a default route via 10.1.0.254 when route is set.
func lanPair(t *testing.T, route bool) (*lantest.LAN, *lantest.Segment, *node, *node) {
	t.Parallel()
	bin := rootBin(t)
	l := lantest.New(t)
	seg := l.Segment()
	ha, hb := l.Host("a"), l.Host("b")
	ha.Attach(seg, "10.1.0.1/24")
	hb.Attach(seg, "10.1.0.2/24")
	if route {
		ha.DefaultRoute("10.1.0.254")
		hb.DefaultRoute("10.1.0.254")
	}
	a, b := newNode(t, ha, bin), newNode(t, hb, bin)
	b.serve()
	return l, seg, a, b
}

// TestNetTunHoldsDefaultRoute: a VPN client's tun device holds the
// default route, so stage 1's address is the VPN's. The QR code leads
// with the LAN address; diag names the tunnel and says the QR code is
// not affected.
func TestNetTunHoldsDefaultRoute(t *testing.T) {
	_, _, a, b := lanPair(t, true)
	a.Tun("tun0", "10.8.0.2/24")
	a.Must("ip", "route", "replace", "default", "dev", "tun0")
	a.serve()
	st := waitBest(t, a, "10.1.0.1")
	for _, x := range st.Addresses {
		if x.IP.String() == "10.8.0.2" && (x.Rank != discovery.RankDemoted || x.Link == nil || x.Link.Class != discovery.ClassTunnel || !strings.Contains(x.RankReason, "tunnel")) {
			t.Fatalf("the VPN address is not demoted as a tunnel: %+v", x)
		}
	}
	if got := qrReachable(t, a, b); got != "10.1.0.1" {
		t.Fatalf("QR host %s", got)
	}
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseVPN)
	expect(t, rep, "routes", diag.Warn, "not affected: it leads with 10.1.0.1 on eth0")
	if s := step(t, rep, "routes"); !strings.Contains(s.Error, "tun0") {
		t.Fatalf("routes does not name the tunnel: %q", s.Error)
	}
	expect(t, rep, "preferred address", diag.Warn, "ranks that address last")
}

// TestNetPolicyRoutedVPN: wg-quick's policy routing (a table of its own,
// fwmark rules, the main table's default suppressed) through an
// interface the kernel cannot tell from Ethernet (a veth named wg0): the
// peer's evidence puts the LAN address first, and diag reads the
// kernel's own lookup, not the main table.
func TestNetPolicyRoutedVPN(t *testing.T) {
	l, _, a, b := lanPair(t, true)
	vpnSeg := l.Segment()
	a.AttachNamed(vpnSeg, "wg0", "10.66.0.2/24")
	a.Must("ip", "route", "add", "default", "dev", "wg0", "table", "51820")
	a.Must("ip", "rule", "add", "priority", "100", "table", "main", "suppress_prefixlength", "0")
	a.Must("ip", "rule", "add", "priority", "101", "not", "fwmark", "0xca6c", "table", "51820")
	a.serve()
	st := waitBest(t, a, "10.1.0.1")
	if !hasProof(st, "10.1.0.1", discovery.ProofReached) {
		t.Fatalf("10.1.0.1 leads without another host's proof: %s", addrDump(st))
	}
	qrReachable(t, a, b)
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseVPN)
	expect(t, rep, "routes", diag.Warn, "not affected: it leads with 10.1.0.1")
	if s := step(t, rep, "routes"); !strings.Contains(s.Error, "wg0") || !strings.Contains(s.Error, "table 51820") {
		t.Fatalf("routes does not name wg0 and its table: %q", s.Error)
	}
}

// TestNetFirewallOnLANInterface: the host's firewall drops inbound TCP
// that arrives on eth0 (a rule on the input interface: the self-ping
// over loopback passes). A second link to another segment, where the
// peer is too, works (on one segment, ARP would carry eth0's address
// over eth1, and it would really be reachable). The peer's
// reverse probe demotes eth0's address; diag on the host says firewall
// on this host, and diag on the peer says firewall on that device.
func TestNetFirewallOnLANInterface(t *testing.T) {
	l, _, a, b := lanPair(t, true)
	seg2 := l.Segment()
	a.Attach(seg2, "10.1.1.1/24")
	b.Attach(seg2, "10.1.1.2/24")
	a.DropInboundTCP("eth0")
	a.serve()
	st := waitBest(t, a, "10.1.1.1")
	lantest.Eventually(t, 10*time.Second, func() error {
		if st, _ = a.status(); !hasProof(st, "10.1.0.1", discovery.ProofUnreached) {
			return fmt.Errorf("no reverse-probe failure recorded for 10.1.0.1: %s", addrDump(st))
		}
		return nil
	})
	if got := qrReachable(t, a, b); got != "10.1.1.1" {
		t.Fatalf("QR host %s, want 10.1.1.1", got)
	}
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseHostFilter)
	expect(t, rep, "reached from outside", diag.Warn, "a firewall on this host drops inbound TCP on eth0")
	repB := b.runDiag(t, "")
	noBlame(t, repB, diag.CausePeerFilter)
	expect(t, repB, "peer reachability", diag.Warn, "a firewall on that device")
}

// TestNetFirewallAlone: the same firewall, with no other link: no
// address can lead that works, and diag must say why instead of ✓.
func TestNetFirewallAlone(t *testing.T) {
	_, _, a, b := lanPair(t, true)
	a.DropInboundTCP("eth0")
	a.serve()
	lantest.Eventually(t, 10*time.Second, func() error {
		if st, _ := a.status(); st == nil || !hasProof(st, "10.1.0.1", discovery.ProofUnreached) {
			return fmt.Errorf("no reverse-probe failure recorded for 10.1.0.1: %s", addrDump(st))
		}
		return nil
	})
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseHostFilter)
	expect(t, rep, "reached from outside", diag.Warn, "allow TCP port")
	repB := b.runDiag(t, "")
	noBlame(t, repB, diag.CausePeerFilter)
	expect(t, repB, "peer reachability", diag.Warn, "drops inbound TCP")
}

// TestNetNoCarrier: the interface holding the default route lost its
// carrier (cable out) but keeps its address and a linkdown route.
func TestNetNoCarrier(t *testing.T) {
	l, _, a, b := lanPair(t, false)
	dead := a.Attach(l.Segment(), "10.5.0.1/24")
	a.DefaultRoute("10.5.0.254")
	dead.NoCarrier()
	a.serve()
	st := waitBest(t, a, "10.1.0.1")
	for _, x := range st.Addresses {
		if x.IP.String() == "10.5.0.1" && (x.Rank != discovery.RankDemoted || !strings.Contains(x.RankReason, "no carrier")) {
			t.Fatalf("the address without carrier is not demoted: %+v", x)
		}
	}
	qrReachable(t, a, b)
	rep := a.runDiag(t, "")
	noBlame(t, rep)
	expect(t, rep, "interfaces", diag.Warn, "not offer that address first")
	if s := step(t, rep, "interfaces"); !strings.Contains(s.Error, "no carrier on eth1") {
		t.Fatalf("interfaces: %q", s.Error)
	}
	expect(t, rep, "routes", diag.Warn, "no carrier")
}

// TestNetBridgeAnyName: bridges with names on no list, one without ports
// and one with a container behind it (carrier, only a veth port), and a
// VXLAN overlay (as flannel makes; a case the issue does not name), on
// an isolated LAN where stage 1 cannot choose: none leads.
func TestNetBridgeAnyName(t *testing.T) {
	_, _, a, b := lanPair(t, false)
	a.Bridge("lanparty", false, "10.20.0.1/24")
	a.Bridge("services", true, "10.21.0.1/24")
	a.Must("ip", "link", "add", "overlay7", "type", "vxlan", "id", "7", "dstport", "4789")
	a.Must("ip", "addr", "add", "10.22.0.1/24", "dev", "overlay7")
	a.Must("ip", "link", "set", "overlay7", "up")
	a.serve()
	st := waitBest(t, a, "10.1.0.1")
	for _, x := range st.Addresses {
		if strings.HasPrefix(x.IP.String(), "10.2") && x.Rank != discovery.RankDemoted {
			t.Fatalf("bridge address not demoted: %+v", x)
		}
	}
	qrReachable(t, a, b)
	rep := a.runDiag(t, "")
	noBlame(t, rep)
	for _, s := range rep.Steps {
		if s.Name == "interfaces" {
			if !strings.Contains(s.Summary, "services") || !strings.Contains(s.Summary, "(virtual)") {
				t.Fatalf("interfaces does not call the bridge virtual: %q", s.Summary)
			}
		}
	}
}

// TestNetHostBridge (a case the issue does not name): the LAN link is a
// bridge that enslaves the real port and holds the default route, as on
// a VM host. It is the LAN, not a virtual adapter: it leads.
func TestNetHostBridge(t *testing.T) {
	t.Parallel()
	bin := rootBin(t)
	l := lantest.New(t)
	seg := l.Segment()
	ha, hb := l.Host("a"), l.Host("b")
	ha.Attach(seg)
	ha.Bridge("br-lan", false, "10.1.0.1/24")
	ha.Must("ip", "link", "set", "eth0", "master", "br-lan")
	ha.DefaultRoute("10.1.0.254")
	hb.Attach(seg, "10.1.0.2/24")
	a, b := newNode(t, ha, bin), newNode(t, hb, bin)
	b.serve()
	a.serve()
	st := waitBest(t, a, "10.1.0.1")
	if x := st.Addresses[0]; x.Link == nil || x.Link.Class != discovery.ClassLAN {
		t.Fatalf("the host bridge is not the LAN: %+v", x)
	}
	qrReachable(t, a, b)
}

// TestNetIsolatedLAN: no default route (no internet): pairing works, so
// diag warns and ok stays true.
func TestNetIsolatedLAN(t *testing.T) {
	_, _, a, b := lanPair(t, false)
	a.serve()
	waitBest(t, a, "10.1.0.1")
	qrReachable(t, a, b)
	rep := a.runDiag(t, "")
	noBlame(t, rep)
	expect(t, rep, "routes", diag.Warn, "fine on an isolated LAN")
	expect(t, rep, "preferred address", diag.Warn, "isolated LAN")
	if !rep.OK {
		b, _ := json.MarshalIndent(rep.Steps, "", " ")
		t.Fatalf("ok is false on an isolated LAN where pairing works:\n%s", b)
	}
}

// TestNetAloneWithOtherStateDir: diag run with a state directory that is
// not the daemon's (a member of group pairing using the service) never
// counts this host's own daemon as a peer.
func TestNetAloneWithOtherStateDir(t *testing.T) {
	t.Parallel()
	a := loneNode(t, "10.1.0.1/24")
	a.serve()
	other := *a
	other.state = filepath.Join(t.TempDir(), "user-state")
	os.MkdirAll(other.state, 0o700)
	rep := other.runDiag(t, "")
	noBlame(t, rep)
	expect(t, rep, "peers", diag.Warn, "no other device answered")
	expect(t, rep, "daemon", diag.Pass, "")
}

// TestNetTwoSubnets: a router between two subnets; a and b paired
// earlier. Discovery does not cross it: diag says so, and the QR code
// still works across it.
func TestNetTwoSubnets(t *testing.T) {
	t.Parallel()
	bin := rootBin(t)
	l := lantest.New(t)
	s1, s2 := l.Segment(), l.Segment()
	hr, ha, hb := l.Host("r"), l.Host("a"), l.Host("b")
	hr.Attach(s1, "10.1.0.254/24")
	hr.Attach(s2, "10.2.0.254/24")
	hr.Must("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	ha.Attach(s1, "10.1.0.1/24")
	ha.DefaultRoute("10.1.0.254")
	hb.Attach(s2, "10.2.0.1/24")
	hb.DefaultRoute("10.2.0.254")
	a, b := newNode(t, ha, bin), newNode(t, hb, bin)
	b.serve()
	a.serve()
	qrReachable(t, b, a)
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("join across the router: %s", stderr)
	}
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseRouter)
	expect(t, rep, "peers", diag.Warn, "discovery does not cross routers")
	expect(t, rep, "paired peers", diag.Pass, "")
}

// TestNetClientIsolation: the switch isolates its client ports (AP/client
// isolation): the gateway answers, the peer paired earlier does not, and
// no beacon comes through. diag names isolation and does not advise the
// QR code.
func TestNetClientIsolation(t *testing.T) {
	t.Parallel()
	bin := rootBin(t)
	l := lantest.New(t)
	seg := l.Segment()
	hg, ha, hb := l.Host("g"), l.Host("a"), l.Host("b")
	hg.Attach(seg, "10.1.0.254/24")
	la := ha.Attach(seg, "10.1.0.1/24")
	lb := hb.Attach(seg, "10.1.0.2/24")
	ha.DefaultRoute("10.1.0.254")
	hb.DefaultRoute("10.1.0.254")
	a, b := newNode(t, ha, bin), newNode(t, hb, bin)
	b.serve()
	a.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing a with b: %s", stderr)
	}
	la.Isolate()
	lb.Isolate()
	ha.Must("ip", "neigh", "flush", "all")
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseIsolation)
	expect(t, rep, "peer reachability", diag.Warn, "client isolation")
	if s := step(t, rep, "peers"); strings.Contains(s.Hint, "use the QR code") {
		t.Fatalf("the hint advises the QR code, which cannot cross isolation: %q", s.Hint)
	}
}

// TestNetMTUBlackHole: the segment drops packets over 1000 bytes without
// telling: beacons and small requests pass, full-size ones stall.
func TestNetMTUBlackHole(t *testing.T) {
	_, seg, a, b := lanPair(t, true)
	seg.DropLarger(1000)
	a.serve()
	waitBest(t, a, "10.1.0.1")
	qrReachable(t, a, b)
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseMTU)
	expect(t, rep, "peer reachability", diag.Warn, "path MTU")
	// The TLS handshake's certificate flight does not fit either: join
	// says the connection stalled, not "the same network?".
	seg.DropLarger(500)
	_, stderr, code := a.join(b.qr().URL)
	if code != 1 || !strings.Contains(stderr, "path MTU") {
		t.Fatalf("join over the black hole: exit %d: %s", code, stderr)
	}
}

// TestNetJoinerPortAndZone: the QR side stores the port of a device that
// joined it, so its paired-peers step reaches it; link-local addresses
// are stored with our own interface as zone.
func TestNetJoinerPortAndZone(t *testing.T) {
	_, _, a, b := lanPair(t, true)
	a.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing a with b: %s", stderr)
	}
	rep := b.runDiag(t, "")
	noBlame(t, rep)
	expect(t, rep, "paired peers", diag.Pass, "")
	// Shell completion of a peer name asks the running daemon.
	if out, _, _ := a.Run(a.bin, "__complete", "send", "--socket", a.socket, ""); !strings.Contains(out, "b\t") {
		t.Errorf("completing send's PEER from the daemon: %q", out)
	}
	for _, p := range a.peers() {
		for _, x := range p.Addresses {
			if x.Is6() && x.IsLinkLocalUnicast() && x.Zone() != "eth0" {
				t.Fatalf("a stored b's link-local address %s without our zone eth0", x)
			}
		}
	}
}
