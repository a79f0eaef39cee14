package e2e

// Forged claims from a stranger: observed addresses, offers naming a
// paired device, spoofed goodbyes and announces, reverse probes aimed at
// others.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// TestAttackObserved: /v1/observed takes no word from strangers, and
// about no address that is not the device's own: loopback, multicast,
// another host's, a foreign one never reach status, the QR code, or a
// dial. /v1/transfer takes no file from a device that is not paired.
func TestAttackObserved(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, _, x := attackLAN(t, 1)
	a.serve()
	out := x.RunTest(t, "TestHelperAttackObserved", "ATTACK_TARGET=10.1.0.1:"+strconv.Itoa(a.port()))
	r := result(t, out)
	if r["accepted"] != 0 || r["refused"] != 7 || r["transfer_refused"] != 1 {
		t.Fatalf("observations: %v, want all 7 refused, and the transfer", r)
	}
	if items := a.inbox(); len(items) != 0 {
		t.Fatalf("a stranger's file reached the inbox: %+v", items)
	}
	st, _ := a.status()
	for _, ad := range st.Addresses {
		if ad.IP.String() != "10.1.0.1" && !ad.IP.IsLinkLocalUnicast() {
			t.Fatalf("a took %s from an observation", ad.IP)
		}
	}
	if w := a.qr(); strings.Contains(w.URL, "127.0.0.1") || strings.Contains(w.URL, "203.0.113") {
		t.Fatalf("the QR code carries an observed address: %s", w.URL)
	}
	if strings.Contains(a.daemon.Stderr(), "a peer's view of our address did not confirm") {
		t.Fatal("a dialled an observed address")
	}
}

func TestHelperAttackObserved(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackObserved")
	}
	target := os.Getenv("ATTACK_TARGET")
	src := netip.MustParseAddr("10.1.0.100")
	stranger, known := attacker(t), attacker(t)
	// known announces itself first, so a knows it from the beacon.
	c, err := net.Dial("udp", net.JoinHostPort("10.1.0.1", strconv.Itoa(beacon.DefaultPort)))
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := (&beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: known.Fingerprint, Instance: 7, Port: 9, Name: "x",
		Addrs: []netip.Addr{src}}).Append(nil)
	c.Write(pk)
	c.Close()
	time.Sleep(200 * time.Millisecond)
	counts := map[string]int{}
	try := func(id *pairing.Identity, addr string) {
		body, _ := json.Marshal(pairing.ObservedRequest{Addr: netip.MustParseAddr(addr)})
		status, _, err := postFrom(id, src, target, pairing.PathObserved, body)
		switch {
		case err != nil:
			counts["error"]++
		case status == http.StatusAccepted:
			counts["accepted"]++
			t.Logf("accepted %s", addr)
		default:
			counts["refused"]++
		}
	}
	try(stranger, "10.1.0.1") // a true address, but from nobody a knows
	for _, addr := range []string{"127.0.0.1", "::1", "224.0.0.1", "0.0.0.0", "203.0.113.9", "10.1.0.77"} {
		try(known, addr)
	}
	// The direct transfer path takes files from paired devices only.
	if status, _, err := postFrom(known, src, target, pairing.PathTransfer+"?name=x.bin&size=5", []byte("hello")); err == nil && status == http.StatusForbidden {
		counts["transfer_refused"]++
	}
	printResult(t, counts)
}

// TestAttackBrowserOffers: offers that claim a paired device's
// fingerprint outside a window, and a crowd of strangers with 100 foreign
// candidates each inside one, while a transfer runs between the paired
// daemons. The transfer survives, no offer is answered for the claimed
// fingerprint, strangers beyond the cap wait, and no connectivity check
// goes to the foreign candidates.
func TestAttackBrowserOffers(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, x := attackLAN(t, 2)
	b.DefaultRoute("10.1.0.254") // so that checks to 203.0.113.0/24 would leave
	a.serve()
	b.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing: %s", stderr)
	}
	if _, stderr, err := b.RunInput(`table inet stun { chain out { type filter hook output priority 0; ip daddr 203.0.113.0/24 counter; }; }`, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v %s", err, stderr)
	}
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, make([]byte, 150<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	send := a.Start(a.bin, "send", "--socket", a.socket, "b", "--file", file)
	st, _ := a.status()
	url := "http://10.1.0.2:" + strconv.Itoa(b.port()) + "/p/offer"
	out := x.RunTest(t, "TestHelperAttackOffers", "ATTACK_URL="+url, "ATTACK_CLAIM="+st.Fingerprint, "ATTACK_N=17", "ATTACK_SOURCE=10.1.0.100")
	r := result(t, out)
	if r["claimed_200"] != 0 || r["claimed_403"] != 17 {
		t.Fatalf("offers claiming a's fingerprint outside a window: %v", r)
	}
	b.qr() // a window opens: strangers may offer now
	out = x.RunTest(t, "TestHelperAttackOffers", "ATTACK_URL="+url, "ATTACK_N=17", "ATTACK_CANDIDATES=100", "ATTACK_SOURCE=10.1.0.101")
	r2 := result(t, out)
	t.Logf("outside a window: %v; inside: %v", r, r2)
	if r2["stranger_200"] > 8 || r2["stranger_503"] < 17-8 {
		t.Fatalf("strangers inside a window: %v, want at most 8 answered", r2)
	}
	select {
	case <-send.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the transfer did not end")
	}
	if send.Stderr() != "" && !strings.Contains(send.Stdout()+send.Stderr(), "sent") {
		t.Fatalf("the transfer broke: %s", send.Stderr())
	}
	if err := send.Stop(); err != nil {
		t.Fatalf("the transfer failed: %v %s", err, send.Stderr())
	}
	cnt, _, _ := b.Run("nft", "list", "table", "inet", "stun")
	if m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(cnt); m == nil || m[1] != "0" {
		t.Fatalf("b sent packets to the offers' foreign candidates: %s", cnt)
	}
}

func TestHelperAttackOffers(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackBrowserOffers")
	}
	n, _ := strconv.Atoi(os.Getenv("ATTACK_N"))
	cands, _ := strconv.Atoi(os.Getenv("ATTACK_CANDIDATES"))
	claim := os.Getenv("ATTACK_CLAIM")
	counts := map[string]int{}
	for range n {
		id := attacker(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, sdp, err := rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(id.Key, id.Cert)}).Offer(ctx, id.Fingerprint)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		kind := "stranger"
		if claim != "" {
			kind = "claimed"
			sdp = regexp.MustCompile(`a=fingerprint:sha-256 \S+`).ReplaceAllString(sdp, "a=fingerprint:sha-256 "+claim)
		}
		var extra strings.Builder
		for i := range cands {
			fmt.Fprintf(&extra, "a=candidate:%d 1 udp 2122260223 203.0.113.%d %d typ host\r\n", 900+i, i%250+1, 40000+i)
		}
		sdp = strings.Replace(sdp, "a=end-of-candidates", extra.String()+"a=end-of-candidates", 1)
		if !strings.Contains(sdp, "a=end-of-candidates") {
			sdp += extra.String()
		}
		body, _ := json.Marshal(pairing.ConnectMessage{SDP: sdp})
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(os.Getenv("ATTACK_SOURCE"))}, Timeout: 2 * time.Second}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
		resp, err := hc.Post(os.Getenv("ATTACK_URL"), "application/json", bytes.NewReader(body))
		if err != nil {
			counts["error"]++
			continue
		}
		resp.Body.Close()
		counts[fmt.Sprintf("%s_%d", kind, resp.StatusCode)]++
	}
	printResult(t, counts)
}

// TestAttackSpoofedPaired: spoofed goodbyes and announces for a paired
// device (with black-hole addresses) do not keep a send from it: the
// stored address and port, which a pinned connection confirmed, still
// work, both ways (the device that was joined stored the joiner's port).
func TestAttackSpoofedPaired(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, x := pairedAttackLAN(t)
	for _, ps := range [][]*node{{a, b}, {b, a}} {
		if p := ps[0].peers(); len(p) != 1 || p[0].Port == 0 {
			t.Fatalf("%s stored %+v, want %s's port", ps[0].Name, p, ps[1].Name)
		}
	}
	for _, n := range []*node{a, b} {
		other := a
		if n == a {
			other = b
		}
		st, _ := other.status()
		ip := map[string]string{"a": "10.1.0.1", "b": "10.1.0.2"}[n.Name]
		x.RunTest(t, "TestHelperAttackSpoof", "ATTACK_TARGET="+ip, "ATTACK_FP="+st.Fingerprint)
		start := time.Now()
		if _, stderr, code := n.send(other.Name, "still here"); code != 0 {
			t.Fatalf("send from %s to %s after spoofed beacons: %s", n.Name, other.Name, stderr)
		}
		t.Logf("%s → %s after a spoofed goodbye and black-hole announces: %s", n.Name, other.Name, time.Since(start).Round(time.Millisecond))
	}
}

func TestHelperAttackSpoof(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackSpoofedPaired")
	}
	var fp ident.Fingerprint
	if err := fp.UnmarshalText([]byte(os.Getenv("ATTACK_FP"))); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", net.JoinHostPort(os.Getenv("ATTACK_TARGET"), strconv.Itoa(beacon.DefaultPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var holes []netip.Addr
	for i := range 8 {
		holes = append(holes, netip.AddrFrom4([4]byte{10, 1, 0, byte(150 + i)}))
	}
	for _, p := range []*beacon.Packet{
		{Type: beacon.TypeGoodbye, Fingerprint: fp, Instance: 5},
		{Type: beacon.TypeAnnounce, Fingerprint: fp, Instance: 6, Port: 9, Name: "spoofed", Addrs: holes},
	} {
		b, _ := p.Append(nil)
		c.Write(b)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAttackReverseProbe: a stranger on the LAN uses a's reverse probes
// to make it dial elsewhere. Only devices in a's peer table are heard;
// only the address a request came from is dialled (a bystander the
// stranger announces as its own, another address of its own, loopback,
// off-link: denied, never dialled); the answer says only whether a's
// dial reached a pairing listener (no status code, no banner); at most
// MaxProbeTargets per request, a few requests per source.
func TestAttackReverseProbe(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, x := attackLAN(t, 1)
	a.serve()
	b.serve()
	out := x.RunTest(t, "TestHelperAttackProbe", "ATTACK_TARGET=10.1.0.1:"+strconv.Itoa(a.port()))
	r := result(t, out)
	if r["stranger_refused"] != 1 || r["bad_refused"] != 3 || r["denied"] != 6 || r["dials"] > 5 || r["rate_refused"] < 5 || r["leaked"] != 0 {
		t.Fatalf("reverse probes: %v; want the stranger and 3 bad bodies refused, 6 targets denied, at most 5 dials to the attacker (the burst), the rest rate-limited, nothing said about what answered", r)
	}
	if strings.Contains(b.daemon.Stderr(), "nonce unknown here") {
		t.Fatal("a dialled b for the attacker")
	}
	st, _ := a.status()
	if len(st.Addresses) == 0 || st.Addresses[0].IP.String() != "10.1.0.1" {
		t.Fatalf("a's addresses after the attack: %s", addrDump(st))
	}
}

func TestHelperAttackProbe(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackReverseProbe")
	}
	target := os.Getenv("ATTACK_TARGET")
	src := netip.MustParseAddr("10.1.0.100")
	// The attacker listens where it says its listener is, and counts
	// what a dials there.
	ln, err := net.Listen("tcp", "10.1.0.100:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dials atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.SetDeadline(time.Now().Add(time.Second))
			c.Read(make([]byte, 4096))
			c.Write([]byte("HTTP/1.1 418 I'm a teapot\r\nServer: banner-4711\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	stranger, known := attacker(t), attacker(t)
	c, err := net.Dial("udp", net.JoinHostPort("10.1.0.1", strconv.Itoa(beacon.DefaultPort)))
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := (&beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: known.Fingerprint, Instance: 7, Port: uint16(port), Name: "x",
		Addrs: []netip.Addr{src}}).Append(nil)
	c.Write(pk)
	c.Close()
	time.Sleep(200 * time.Millisecond)
	counts := map[string]int{}
	nonce := strings.Repeat("ab", 16)
	ask := func(id *pairing.Identity, body []byte) (int, pairing.ProbeResponse) {
		d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 2 * time.Second},
			Config: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.TLSCertificate()}, InsecureSkipVerify: true}}
		tr := &http.Transport{DisableKeepAlives: true, DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", target)
		}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post("https://x"+pairing.PathProbe, "application/json", bytes.NewReader(body))
		if err != nil {
			counts["error"]++
			return 0, pairing.ProbeResponse{}
		}
		defer resp.Body.Close()
		var pr pairing.ProbeResponse
		json.NewDecoder(resp.Body).Decode(&pr)
		return resp.StatusCode, pr
	}
	req := func(addrs ...string) []byte {
		var r pairing.ProbeRequest
		for _, a := range addrs {
			r.Targets = append(r.Targets, discovery.ProbeTarget{Addr: netip.MustParseAddr(a), Nonce: nonce})
		}
		b, _ := json.Marshal(r)
		return b
	}
	if status, _ := ask(stranger, req("10.1.0.100")); status == http.StatusForbidden {
		counts["stranger_refused"]++
	}
	nine := make([]string, 9)
	for i := range nine {
		nine[i] = "10.1.0.100"
	}
	for _, body := range [][]byte{[]byte("{"), req(nine...), []byte(`{"targets":[{"addr":"10.1.0.100","nonce":"x"}]}`)} {
		if status, _ := ask(known, body); status == http.StatusBadRequest {
			counts["bad_refused"]++
		}
	}
	// A bystander (b), a's own, loopback, off-link, another host, and x's
	// own second address (not the one the request comes from).
	if status, pr := ask(known, req("10.1.0.2", "10.1.0.1", "127.0.0.1", "203.0.113.9", "fe80::1", "10.1.0.101")); status == http.StatusOK {
		for _, res := range pr.Results {
			if res.Result == discovery.ProbeDenied {
				counts["denied"]++
			}
		}
	}
	// x's own address: dialled; x's listener there answers with a
	// banner of its own, and a says only "not the pairing listener".
	if status, pr := ask(known, req("10.1.0.100")); status == http.StatusOK {
		for _, res := range pr.Results {
			if res.Result != discovery.ProbeOtherHost || strings.ContainsAny(res.Error, "0123456789") {
				counts["leaked"]++
			}
		}
	}
	for range 10 {
		status, _ := ask(known, req("10.1.0.100"))
		if status == http.StatusForbidden {
			counts["rate_refused"]++
		}
	}
	time.Sleep(200 * time.Millisecond)
	counts["dials"] = int(dials.Load())
	printResult(t, counts)
}
