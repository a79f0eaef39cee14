package e2e

// Evidence only from where it can hold: networks the way people's
// machines have them (a VPN, containers, a second network card, a cable
// without DHCP, IPv6 without a router), and strangers that lie. Each test
// asserts that the QR code's first host is reachable from where a phone
// would be, and that no address carries evidence that cannot hold.

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/lanpairing/pairing/diag"
	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/lantest"
)

// waitReachedBy waits until n's address ip carries a reach proof from a
// device that proved its key (a reverse probe), and returns the status.
func waitReachedBy(t *testing.T, n *node, ip string) *status {
	t.Helper()
	var st *status
	lantest.Eventually(t, 15*time.Second, func() error {
		var err error
		if st, err = n.status(); err != nil {
			return err
		}
		for _, a := range st.Addresses {
			if a.IP.String() != ip {
				continue
			}
			for _, p := range a.Proofs {
				if p.Kind == discovery.ProofReached && p.Trust != "" && p.Trust != discovery.TrustStranger {
					return nil
				}
			}
		}
		return fmt.Errorf("%s has no identified device's reach: %s", ip, addrDump(st))
	})
	return st
}

// noUnreached fails when any address of st carries a not-reached proof.
func noUnreached(t *testing.T, st *status) {
	t.Helper()
	for _, a := range st.Addresses {
		for _, p := range a.Proofs {
			if p.Kind == discovery.ProofUnreached {
				t.Fatalf("%s carries a not-reached proof where no test installed a filter: %+v\n%s", a.IP, p, addrDump(st))
			}
		}
	}
}

// TestNetVPNContainersSecondNIC: a has a VPN (a real tun device holding
// the default route), a Docker-style bridge with a container's veth,
// masquerade and a forward drop, and a second network card on a LAN
// where nobody else is. Its peer b is on the first LAN only. The peer is
// asked only about addresses it shares a link with: no link-local
// address of the tun, the bridge or the second card, no address of
// another subnet; so no address is "not reached", and the QR code leads
// with the address b reached.
func TestNetVPNContainersSecondNIC(t *testing.T) {
	l, _, a, b := lanPair(t, true)
	a.Tun("tun0", "10.8.0.2/24")
	a.Must("ip", "route", "replace", "default", "dev", "tun0")
	a.Bridge("docker0", true, "172.17.0.1/16")
	if _, stderr, err := a.RunInput(`table ip nat {
	chain post { type nat hook postrouting priority 100; ip saddr 172.17.0.0/16 masquerade; }
}
table ip filter {
	chain forward_drop { type filter hook forward priority 0; policy drop; }
}`, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v %s", err, stderr)
	}
	a.Attach(l.Segment(), "10.2.0.1/24")
	a.serve()
	waitReachedBy(t, a, "10.1.0.1")
	time.Sleep(3 * time.Second) // the rounds after the first
	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	noUnreached(t, st)
	if got := qrReachable(t, a, b); got != "10.1.0.1" {
		t.Fatalf("QR host %s, want 10.1.0.1 (where b is)", got)
	}
	// diag: the VPN is named (the test installed it), no firewall or
	// anything else is blamed, and pairing by QR code works.
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseVPN)
	if !rep.OK {
		t.Errorf("diag is not ok on a machine with a VPN, containers and a second card")
	}
}

// TestNetTailscaleLikeSecondLAN: a case the issue does not spell out. A
// Tailscale-like tun (100.64.0.0/10 CGNAT address, its routes in a table
// of its own via ip rule) next to two real LANs, a peer on each: each
// LAN address is reached by the peer on its link, the tun's gets no
// probe, nothing is "not reached", and the QR code for either network is
// reachable from that network.
func TestNetTailscaleLikeSecondLAN(t *testing.T) {
	l, _, a, b := lanPair(t, true)
	seg2 := l.Segment()
	a.Attach(seg2, "10.2.0.1/24")
	c := newNode(t, l.Host("c"), b.bin)
	c.Attach(seg2, "10.2.0.2/24")
	c.serve()
	a.Tun("tailscale0", "100.100.1.2/32")
	a.Must("ip", "route", "add", "100.64.0.0/10", "dev", "tailscale0", "table", "52")
	a.Must("ip", "rule", "add", "priority", "5270", "table", "52")
	a.serve()
	waitReachedBy(t, a, "10.1.0.1")
	st := waitReachedBy(t, a, "10.2.0.1")
	time.Sleep(2 * time.Second)
	if st, _ = a.status(); st != nil {
		noUnreached(t, st)
	}
	u0, _ := url.Parse(a.qr().URL)
	first := u0.Hostname()
	on := map[string]*node{"10.1.0.1": b, "10.2.0.1": c}[first]
	if on == nil {
		t.Fatalf("QR host %s", first)
	}
	qrReachable(t, a, on)
	// The code for the other network: qr --address.
	other := map[string]*node{"10.1.0.1": c, "10.2.0.1": b}[first]
	otherIP := map[string]string{"10.1.0.1": "10.2.0.1", "10.2.0.1": "10.1.0.1"}[first]
	w := a.qr("--address", otherIP)
	u, _ := url.Parse(w.URL)
	if u.Hostname() != otherIP {
		t.Fatalf("qr --address %s leads with %s", otherIP, u.Hostname())
	}
	if _, stderr, err := other.Run("timeout", "3", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", u.Hostname(), u.Port())); err != nil {
		t.Fatalf("the code for the other network is not reachable from it: %v %s", err, stderr)
	}
	for _, x := range st.Addresses {
		if x.IP.String() == "100.100.1.2" && x.Rank != discovery.RankDemoted {
			t.Fatalf("the tailnet address is not demoted: %+v", x)
		}
	}
	rep := a.runDiag(t, "")
	noBlame(t, rep, diag.CauseVPN)
	if !rep.OK {
		t.Errorf("diag is not ok with a tailnet next to two LANs")
	}
}

// TestNetZeroconfCable: two laptops on a cable without DHCP have only
// 169.254/16 and fe80:: addresses. The IPv4 link-local address needs no
// zone: it leads the QR code, and the other laptop pairs with it.
func TestNetZeroconfCable(t *testing.T) {
	t.Parallel()
	bin := rootBin(t)
	l := lantest.New(t)
	seg := l.Segment()
	a, b := newNode(t, l.Host("a"), bin), newNode(t, l.Host("b"), bin)
	a.Attach(seg, "169.254.10.1/16")
	b.Attach(seg, "169.254.20.2/16")
	a.serve()
	b.serve()
	if got := qrReachable(t, a, b); got != "169.254.10.1" {
		t.Fatalf("QR host %s, want the IPv4 link-local address", got)
	}
	if _, stderr, code := b.join(a.qr().URL); code != 0 {
		t.Fatalf("join over the zeroconf cable: %s", stderr)
	}
	st, _ := a.status()
	noUnreached(t, st)
	rep := a.runDiag(t, "")
	noBlame(t, rep)
	if !rep.OK {
		t.Errorf("diag is not ok on a zeroconf cable")
	}
}

// TestNetGlobalIPv6Only: a LAN with only global IPv6 addresses (an
// on-link prefix, no default router, no IPv4): they are swept, lead the
// QR code, and the other device pairs with it.
func TestNetGlobalIPv6Only(t *testing.T) {
	t.Parallel()
	bin := rootBin(t)
	l := lantest.New(t)
	seg := l.Segment()
	a, b := newNode(t, l.Host("a"), bin), newNode(t, l.Host("b"), bin)
	a.Attach(seg, "2001:db8:5::1/64")
	b.Attach(seg, "2001:db8:5::2/64")
	a.serve()
	b.serve()
	if got := qrReachable(t, a, b); got != "2001:db8:5::1" {
		t.Fatalf("QR host %s, want the global IPv6 address", got)
	}
	if _, stderr, code := b.join(a.qr().URL); code != 0 {
		t.Fatalf("join over global IPv6: %s", stderr)
	}
	rep := a.runDiag(t, "")
	noBlame(t, rep)
	if !rep.OK {
		t.Errorf("diag is not ok on a global-only IPv6 LAN")
	}
}
