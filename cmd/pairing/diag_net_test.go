package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/diag"
	"github.com/lanpairing/pairing/internal/lan"
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
	expect(t, rep, "routes", diag.Pass, "")
	expectFinding(t, rep, "vpn-default-route", diag.CauseVPN, "the QR code is not affected: it leads with 10.1.0.1 on eth0")
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
	if !strings.Contains(ifs.Summary, "docker0") || !strings.Contains(ifs.Summary, "(bridge)") || !strings.Contains(ifs.Summary, "(veth)") || strings.Contains(ifs.Summary, "physical") {
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
	l     *lan.LAN
	seg   *lan.Segment
	bin   string
	n     []*node
	links []*lan.Link
}

func newDiagNet(t *testing.T, names ...string) *diagNet {
	t.Parallel()
	d := &diagNet{t: t, bin: rootBin(t)}
	d.l = lan.New(t)
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
func (d *diagNet) add(name string, seg *lan.Segment, cidr string) *node {
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
	lan.Eventually(t, 15*time.Second, func() error {
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
