package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/diag"
	"github.com/lanpairing/pairing/internal/lantest"
)

// noBlame checks that no finding of rep blames a cause other than those
// the test installed: diag needs positive evidence for every cause.
func noBlame(t *testing.T, rep *diag.Report, installed ...string) {
	t.Helper()
	for _, f := range rep.Findings {
		if f.Cause != "" && !slices.Contains(installed, f.Cause) {
			b, _ := json.MarshalIndent(rep.Findings, "", " ")
			t.Errorf("finding %s blames %s, which this test did not install: %s\n%s", f.ID, f.Cause, f.Text, b)
		}
		if len(f.Facts) == 0 {
			t.Errorf("finding %s names no facts", f.ID)
		}
	}
}

// findingOf is the finding with id, or nil.
func findingOf(rep *diag.Report, id string) *diag.Finding {
	for i := range rep.Findings {
		if rep.Findings[i].ID == id {
			return &rep.Findings[i]
		}
	}
	return nil
}

// expectFinding checks that rep has the finding id, blaming cause, whose
// text and hint say want.
func expectFinding(t *testing.T, rep *diag.Report, id, cause, want string) *diag.Finding {
	t.Helper()
	f := findingOf(rep, id)
	if f == nil || f.Cause != cause || !strings.Contains(f.Text+" "+f.Hint, want) {
		b, _ := json.MarshalIndent(rep.Findings, "", " ")
		t.Fatalf("want finding %s (cause %q) saying %q; findings:\n%s", id, cause, want, b)
	}
	return f
}

// noWords checks that no step's error or hint says any of words.
func noWords(t *testing.T, rep *diag.Report, words ...string) {
	t.Helper()
	for _, s := range rep.Steps {
		for _, w := range words {
			if strings.Contains(s.Error+" "+s.Hint, w) {
				t.Errorf("step %s says %q: %s / %s", s.Name, w, s.Error, s.Hint)
			}
		}
	}
}

// TestDiagNetVPNDefault: a real tun device, held open as a VPN client
// holds it, carries the default route. The LAN is not affected and the
// QR code leads with the LAN address: no firewall is blamed for the
// tunnel's address that LAN peers cannot reach.
func TestDiagNetVPNDefault(t *testing.T) {
	_, n := diagLAN(t)
	a := n[0]
	a.Tun("tun0", "10.8.0.2/24")
	a.Must("ip", "route", "replace", "default", "dev", "tun0")
	a.serve()
	waitPeers(t, a, 2)
	rep := a.runDiag(t, "")
	expect(t, rep, "routes", diag.Warn, "the QR code is not affected: it leads with 10.1.0.1 on eth0")
	expectFinding(t, rep, "vpn-default-route", diag.CauseVPN, "LAN traffic stays on the LAN")
	expect(t, rep, "peers", diag.Pass, "")
	expect(t, rep, "reached from outside", diag.Pass, "")
	noBlame(t, rep, diag.CauseVPN)
	noWords(t, rep, "firewall")
}

// TestDiagNetWgQuick: wg-quick's policy routing (the default route in
// table 51820, chosen by fwmark rules) is seen through the kernel's own
// lookup.
func TestDiagNetWgQuick(t *testing.T) {
	_, n := diagLAN(t)
	a := n[0]
	a.Tun("wg0", "10.8.0.2/24")
	a.Must("ip", "route", "add", "default", "dev", "wg0", "table", "51820")
	a.Must("ip", "rule", "add", "not", "fwmark", "0xca6c", "table", "51820")
	a.Must("ip", "rule", "add", "table", "main", "suppress_prefixlength", "0")
	a.serve()
	rep := a.runDiag(t, "")
	f := expectFinding(t, rep, "vpn-default-route", diag.CauseVPN, "table 51820")
	if !strings.Contains(f.Hint, "the QR code is not affected") {
		t.Fatalf("QR: %+v", f)
	}
	expect(t, rep, "peers", diag.Pass, "")
	noBlame(t, rep, diag.CauseVPN)
	noWords(t, rep, "firewall")
}

// TestDiagNetDocker: a Docker-style host, bridges with veths to
// containers, masquerade and a forward drop. The veth is called a veth,
// not "physical", and no firewall is blamed for the bridge's address.
func TestDiagNetDocker(t *testing.T) {
	_, n := diagLAN(t)
	a := n[0]
	a.Bridge("docker0", true, "172.17.0.1/16")
	a.Bridge("br-5e1f", false, "172.18.0.1/16")
	a.RunInput(`table ip nat {
	chain postrouting { type nat hook postrouting priority 100; policy accept; ip saddr 172.17.0.0/16 oifname != "docker0" masquerade; }
}
table ip filter {
	chain forward { type filter hook forward priority 0; policy drop; iifname "docker0" accept; }
}
`, "nft", "-f", "-")
	a.serve()
	waitPeers(t, a, 2)
	rep := a.runDiag(t, "")
	for _, s := range rep.Steps {
		if s.Status == diag.Fail {
			t.Errorf("step %s fails: %s", s.Name, s.Error)
		}
	}
	ifs := step(t, rep, "interfaces")
	if !strings.Contains(ifs.Summary, "docker0") || !strings.Contains(ifs.Summary, "br-5e1f [172.18.0.1/16") || !strings.Contains(ifs.Summary, "(virtual)") || !strings.Contains(ifs.Summary, "(veth)") || strings.Contains(ifs.Summary, "physical") {
		t.Errorf("interfaces: %s", ifs.Summary)
	}
	expect(t, rep, "peers", diag.Pass, "")
	expect(t, rep, "reached from outside", diag.Pass, "")
	expect(t, rep, "packet filter", diag.Pass, "")
	noBlame(t, rep)
	noWords(t, rep, "firewall")
}

// TestDiagNetSecondLAN: a host on two physical LANs, a peer on each.
// Neither peer can reach the other LAN's address: that is no firewall.
func TestDiagNetSecondLAN(t *testing.T) {
	d := newDiagNet(t, "a", "b", "c")
	a := d.n[0]
	seg2 := d.l.Segment()
	a.Attach(seg2, "10.2.0.1/24")
	dn := d.add("d", seg2, "10.2.0.4/24")
	dn.serve()
	a.serve()
	waitPeers(t, a, 3)
	rep := a.runDiag(t, "")
	expect(t, rep, "peers", diag.Pass, "")
	if p := step(t, rep, "peers"); !strings.Contains(p.Summary, "3 peers") || !strings.Contains(p.Summary, "d (") {
		t.Errorf("peers: %s", p.Summary)
	}
	expect(t, rep, "reached from outside", diag.Pass, "")
	expect(t, rep, "self-reachability", diag.Pass, "")
	noBlame(t, rep)
	noWords(t, rep, "firewall")
}

// diagNet is a LAN like diagLAN's (hosts on 10.1.0.0/24, a default
// route via 10.1.0.254, which nobody owns, every host but the first
// serving), with the harness and the links at hand for more shapes.
type diagNet struct {
	t     *testing.T
	l     *lantest.LAN
	seg   *lantest.Segment
	bin   string
	n     []*node
	links []*lantest.Link
}

func newDiagNet(t *testing.T, names ...string) *diagNet {
	t.Parallel()
	d := &diagNet{t: t, bin: rootBin(t)}
	d.l = lantest.New(t)
	d.seg = d.l.Segment()
	for i, name := range names {
		n := d.add(name, d.seg, fmt.Sprintf("10.1.0.%d/24", i+1))
		n.DefaultRoute("10.1.0.254")
		if i > 0 {
			n.serve()
		}
	}
	return d
}

// add puts host name on seg with the address cidr.
func (d *diagNet) add(name string, seg *lantest.Segment, cidr string) *node {
	h := d.l.Host(name)
	d.links = append(d.links, h.Attach(seg, cidr))
	n := newNode(d.t, h, d.bin)
	d.n = append(d.n, n)
	return n
}

// waitPeers waits until n's daemon has seen k devices (so the reverse
// probes and observed calls have had their chance).
func waitPeers(t *testing.T, n *node, k int) {
	t.Helper()
	lantest.Eventually(t, 15*time.Second, func() error {
		st, err := n.status()
		if err != nil {
			return err
		}
		if len(st.Peers) < k {
			return fmt.Errorf("%s sees %d devices, want %d", n.Name, len(st.Peers), k)
		}
		return nil
	})
}

// TestDiagNetSplitTunnel: a VPN route broader than the LAN's leaves the
// LAN alone (the LAN's own route is more specific); one more specific
// than the LAN's takes part of it, and a peer in that part is reached
// through the tunnel.
func TestDiagNetSplitTunnel(t *testing.T) {
	d := newDiagNet(t, "a", "b", "c")
	a := d.n[0]
	far := d.add("d", d.seg, "10.1.0.200/24")
	far.DefaultRoute("10.1.0.254")
	far.serve()
	a.Tun("tun0", "10.8.0.2/24")
	a.Must("ip", "route", "add", "10.0.0.0/8", "dev", "tun0")
	a.serve()
	waitPeers(t, a, 3)
	rep := a.runDiag(t, "")
	expect(t, rep, "routes", diag.Pass, "")
	expectFinding(t, rep, "vpn-route-covers-lan", diag.CauseVPN, "the LAN's own route is more specific")
	expect(t, rep, "peers", diag.Pass, "")
	expect(t, rep, "peer reachability", diag.Pass, "")
	noBlame(t, rep, diag.CauseVPN)
	noWords(t, rep, "unreachable", "firewall")

	a.Must("ip", "route", "add", "10.1.0.128/25", "dev", "tun0")
	rep = a.runDiag(t, "")
	expect(t, rep, "routes", diag.Warn, "10.1.0.128/25")
	expectFinding(t, rep, "vpn-steals-lan", diag.CauseVPN, "through tun0")
	expectFinding(t, rep, "peer-via-vpn", diag.CauseVPN, "the kernel sends traffic for 10.1.0.200 through tun0")
	noBlame(t, rep, diag.CauseVPN)
	noWords(t, rep, "firewall")
}

// TestDiagNetHostDropsUDP: this host's own filter drops UDP while the
// pairing port is open. diag names the table and chain, and says nothing
// of the network or a router.
func TestDiagNetHostDropsUDP(t *testing.T) {
	d := newDiagNet(t, "a", "b")
	a, b := d.n[0], d.n[1]
	a.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing a with b: %s", stderr)
	}
	a.RunInput(`table inet hostfw {
	chain input {
		type filter hook input priority 0; policy accept;
		ct state established,related accept
		tcp dport 1-65535 accept
		meta l4proto udp drop
	}
}
`, "nft", "-f", "-")
	rep := a.runDiag(t, "")
	expect(t, rep, "packet filter", diag.Warn, "this host's own packet filter drops discovery")
	expect(t, rep, "packet filter", diag.Warn, "inet hostfw chain input")
	expect(t, rep, "peers", diag.Warn, "this host's own packet filter drops the answers (inet hostfw chain input")
	expect(t, rep, "paired peers", diag.Pass, "")
	if !rep.OK {
		t.Errorf("not ok, while pairing by QR code works")
	}
	noBlame(t, rep, diag.CauseHostFilter)
	noWords(t, rep, "router", "network filters", "multicast filter")
}

// TestDiagNetProhibited: a reject with icmpx admin-prohibited (firewalld's
// default) is an answer: on a peer it names the peer's filter; on this
// host the filter step names the rule.
func TestDiagNetProhibited(t *testing.T) {
	d := newDiagNet(t, "a", "b")
	a, b := d.n[0], d.n[1]
	st, err := b.status()
	if err != nil {
		t.Fatal(err)
	}
	b.RunInput(fmt.Sprintf(`table inet firewalld {
	chain filter_INPUT {
		type filter hook input priority 10; policy accept;
		tcp dport %d reject with icmpx admin-prohibited
	}
}
`, st.Port), "nft", "-f", "-")
	a.serve()
	rep := a.runDiag(t, "")
	expect(t, rep, "peer reachability", diag.Warn, "rejects TCP with ICMP administratively prohibited")
	expectFinding(t, rep, "peer-prohibited", diag.CausePeerFilter, "a packet filter on b refuses the pairing port")
	noBlame(t, rep, diag.CausePeerFilter)

	ast, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	a.RunInput(fmt.Sprintf(`table inet firewalld {
	chain filter_INPUT {
		type filter hook input priority 10; policy accept;
		tcp dport %d reject with icmpx admin-prohibited
	}
}
`, ast.Port), "nft", "-f", "-")
	rep = a.runDiag(t, "")
	expect(t, rep, "packet filter", diag.Fail, fmt.Sprintf("drops inbound TCP to the pairing port %d", ast.Port))
	expect(t, rep, "packet filter", diag.Fail, "inet firewalld chain filter_INPUT (tcp dport")
	noBlame(t, rep, diag.CausePeerFilter, diag.CauseHostFilter)
}

// TestDiagNetAloneWithPhone: a computer alone on a LAN with a phone (a
// device that loads the page but runs no daemon): the peers step warns
// that discovery between computers cannot be checked, and diag is ok.
func TestDiagNetAloneWithPhone(t *testing.T) {
	t.Parallel()
	l, bin := lanWith(t)
	seg := l.Segment()
	h := l.Host("a")
	h.Attach(seg, "10.1.0.1/24")
	a := newNode(t, h, bin)
	phone := l.Host("p")
	phone.Attach(seg, "10.1.0.9/24")
	a.serve()
	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := phone.Run("wget", "-q", "-O", "/dev/null", fmt.Sprintf("http://10.1.0.1:%d/p", st.Port)); err != nil {
		t.Logf("the phone's page load: %v %s", err, stderr)
	}
	rep := a.runDiag(t, "")
	expect(t, rep, "peers", diag.Warn, "discovery between computers cannot be checked here")
	expect(t, rep, "peers", diag.Warn, "1 other device on this LAN (10.1.0.9)")
	expect(t, rep, "peers", diag.Warn, "pairing by QR code does not need discovery")
	if !rep.OK {
		t.Fatalf("not ok alone with a phone")
	}
	if n := strings.Count(fmt.Sprint(rep.Steps), "pairing by QR code does not need"); n != 1 {
		t.Errorf("the phone's advice said %d times", n)
	}
	noBlame(t, rep)
	noWords(t, rep, "firewall", "isolation", "router", "filters multicast")
}

// TestDiagNetClientIsolation: the access point passes broadcast and
// multicast but drops unicast between its clients, while both reach the
// gateway. Only a's own facts: b's beacon arrives, b does not answer
// ARP, the gateway does: client isolation, named. With port isolation
// that drops everything between clients, nothing positive is left: no
// cause is named.
func TestDiagNetClientIsolation(t *testing.T) {
	// IPv4 only: the isolation below is of IPv4 unicast.
	d := newDiagNet(t, "a")
	a := d.n[0]
	a.DisableIPv6()
	b := d.add("b", d.seg, "10.1.0.2/24")
	b.DefaultRoute("10.1.0.254")
	b.DisableIPv6()
	b.serve()
	g := d.l.Host("g")
	g.Attach(d.seg, "10.1.0.254/24")
	a.serve()
	waitPeers(t, a, 1)
	// The switch is the namespace the harness names <prefix>-sw.
	sw := strings.TrimSuffix(a.NS, "-a") + "-sw"
	nft := exec.Command("ip", "netns", "exec", sw, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(fmt.Sprintf(`table bridge isolation {
	chain isolate {
		type filter hook forward priority 0; policy accept;
		iifname { %q, %q } oifname { %q, %q } meta pkttype != { broadcast, multicast } drop
	}
}
`, d.links[0].Port, d.links[1].Port, d.links[0].Port, d.links[1].Port))
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft in the switch: %v %s", err, out)
	}
	// b restarts behind the isolation: its start-up announcements are
	// multicast, and reach a's daemon.
	isolated := time.Now()
	b.daemon.Stop()
	b.serve()
	lantest.Eventually(t, 15*time.Second, func() error {
		st, err := a.status()
		if err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.Name == "b" && p.LastSeen.After(isolated) {
				return nil
			}
		}
		return fmt.Errorf("a has not heard b since the isolation began")
	})
	a.Must("ip", "neigh", "flush", "all")
	rep := a.runDiag(t, "")
	// b's multicast mDNS answer crosses the isolation, its unicast
	// beacon answer does not.
	expect(t, rep, "peers", diag.Warn, "found by mDNS but not by beacon")
	expect(t, rep, "peer reachability", diag.Warn, "client isolation")
	expectFinding(t, rep, "client-isolation", diag.CauseIsolation, "while the gateway 10.1.0.254 does")
	noBlame(t, rep, diag.CauseIsolation)
	noWords(t, rep, "firewall")

	// Port isolation: b's multicast does not arrive either. a (its
	// daemon restarted: it has heard no one since) sees no one, and the
	// gateway answering is no proof of isolation.
	d.links[0].Isolate()
	d.links[1].Isolate()
	a.daemon.Stop()
	a.serve()
	a.Must("ip", "neigh", "flush", "all")
	rep = a.runDiag(t, "")
	expect(t, rep, "peers", diag.Warn, "discovery between computers cannot be checked here")
	noBlame(t, rep)
	if !rep.OK {
		t.Errorf("not ok, while pairing by QR code works")
	}
}

// TestDiagNetDefaultSocket: diag run without --socket, while the daemon
// was started with a socket of its own. diag finds it (a listening
// socket named pairing.sock), says where, and does not count this host's
// daemon as a peer.
func TestDiagNetDefaultSocket(t *testing.T) {
	d := newDiagNet(t, "a", "b")
	a := d.n[0]
	a.serve()
	out, stderr, err := a.Run(a.bin, "diag", "--json", "--config", "/dev/null", "--state-dir", a.state)
	var rep diag.Report
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("diag JSON: %v\n%s\n%s", jerr, out, stderr)
	}
	if exitCode(err) != 0 {
		t.Errorf("exit %d", exitCode(err))
	}
	expect(t, &rep, "daemon", diag.Pass, "")
	expectFinding(t, &rep, "daemon-other-socket", "", "--socket "+a.socket)
	p := step(t, &rep, "peers")
	if !strings.Contains(p.Summary, "1 peer: b (") || strings.Contains(p.Summary, "a (") {
		t.Errorf("peers: %s", p.Summary)
	}
	noBlame(t, &rep)
}
