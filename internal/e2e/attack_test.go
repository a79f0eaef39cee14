package e2e

// Attacks on a real `pairing serve`, from a hostile host x on the same
// simulated LAN. Each is bounded in count and time, and sends traffic
// only inside the namespaces the test made. The attacker's side runs as
// a helper test (TestHelperAttack…) re-run inside x. The attacks are in
// attack_*_test.go, by subject; this file has what they share.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
)

// attackLAN is a, b and the attacker x (with nSrc addresses
// 10.1.0.100, .101, …) on one segment.
func attackLAN(t *testing.T, nSrc int) (a, b *node, x *lantest.Host) {
	t.Helper()
	bin := rootBin(t)
	l := lantest.New(t)
	seg := l.Segment()
	var ns []*node
	for i, name := range []string{"a", "b"} {
		h := l.Host(name)
		h.Attach(seg, fmt.Sprintf("10.1.0.%d/24", i+1))
		ns = append(ns, newNode(t, h, bin))
	}
	x = l.Host("x")
	var cidrs []string
	for i := range nSrc {
		cidrs = append(cidrs, fmt.Sprintf("10.1.0.%d/24", 100+i))
	}
	x.Attach(seg, cidrs...)
	return ns[0], ns[1], x
}

// pairedAttackLAN is attackLAN with a and b serving, b joined to a.
func pairedAttackLAN(t *testing.T) (a, b *node, x *lantest.Host) {
	t.Helper()
	a, b, x = attackLAN(t, 1)
	a.serve()
	b.serve()
	if _, stderr, code := b.join(a.qr().URL); code != 0 {
		t.Fatalf("pairing: %s", stderr)
	}
	return a, b, x
}

// sources are x's addresses, as attackLAN gave them.
// port is the daemon's listener port.
func (n *node) port() int {
	n.t.Helper()
	st, err := n.status()
	if err != nil {
		n.t.Fatal(err)
	}
	return st.Port
}

func sources(n int) string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("10.1.0.%d", 100+i))
	}
	return strings.Join(s, ",")
}

// result reads "RESULT key=value …" from a helper's output.
func result(t *testing.T, out string) map[string]int {
	t.Helper()
	m := regexp.MustCompile(`RESULT (.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no RESULT line in:\n%s", out)
	}
	r := map[string]int{}
	for _, kv := range strings.Fields(m[1]) {
		k, v, _ := strings.Cut(kv, "=")
		r[k], _ = strconv.Atoi(v)
	}
	return r
}

func printResult(t *testing.T, counts map[string]int) {
	var b strings.Builder
	for k, v := range counts {
		fmt.Fprintf(&b, " %s=%d", k, v)
	}
	fmt.Printf("RESULT%s\n", b.String())
	t.Logf("RESULT%s", b.String())
}

// attacker is a device identity of the attacker's and TLS to the target
// from a chosen source address (no pin: the attacker does not care).
func attacker(t *testing.T) *pairing.Identity {
	id, err := pairing.LoadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func postFrom(id *pairing.Identity, src netip.Addr, target, path string, body []byte) (int, string, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 2 * time.Second},
		Config: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.TLSCertificate()}, InsecureSkipVerify: true}}
	tr := &http.Transport{DisableKeepAlives: true, DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", target)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post("https://x"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var er pairing.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er.Reason, nil
}
