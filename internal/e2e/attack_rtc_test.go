package e2e

// WebRTC attacks on a real `pairing serve` from a hostile host x:
//   - an offer whose only candidates are .local names that x's own mDNS
//     responder resolves off our links (UDP, and passive ICE-TCP), while
//     x also checks from an address off the link (a peer-reflexive
//     path): the daemon sends nothing off its links;
//   - a paired device that trickles files on every path (direct TLS,
//     its data channel, its page's channel): each ends after a window
//     and its inbox reservation is freed;
//   - the per-device caps: files arriving at once, answered connections,
//     and answers a peer leaves unread.
// Each is bounded in count and time, inside the test's namespaces.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
	"github.com/lanpairing/pairing/pairing/session"
)

// offLinkCounters counts what n sends to 203.0.113.0/24, by kind.
func offLinkCounters(t *testing.T, n *node) {
	t.Helper()
	rules := `table inet offlink {
	chain out {
		type filter hook output priority 0;
		ip daddr 203.0.113.5 meta l4proto udp counter comment "local_udp"
		ip daddr 203.0.113.5 meta l4proto tcp counter comment "local_tcp"
		ip daddr 203.0.113.7 counter comment "prflx"
		ip daddr 203.0.113.0/24 counter comment "any"
	}
}
`
	if _, stderr, err := n.RunInput(rules, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v %s", err, stderr)
	}
}

// readOffLink returns the packet counts of offLinkCounters.
func readOffLink(t *testing.T, n *node) map[string]int {
	t.Helper()
	out, _, err := n.Run("nft", "list", "table", "inet", "offlink")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range regexp.MustCompile(`packets (\d+) bytes \d+ comment "(\w+)"`).FindAllStringSubmatch(out, -1) {
		got[m[2]], _ = strconv.Atoi(m[1])
	}
	if len(got) != 4 {
		t.Fatalf("nft counters: %s", out)
	}
	return got
}

// TestAttackLocalCandidates: a stranger's offer (inside a window) names
// only .local candidates, which its own mDNS responder resolves to
// 203.0.113.5 (a UDP one and a passive ICE-TCP one), and its ICE agent
// also checks from 203.0.113.7, an address it holds on the link (a
// peer-reflexive path). The daemon sends no packet to any of them, and a
// real browser still pairs (its candidates are .local names too).
func TestAttackLocalCandidates(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	requireChromium(t)
	a, b, x := attackLAN(t, 1)
	for _, h := range []*lantest.Host{a.Host, b.Host, x} {
		h.DefaultRoute("10.1.0.254") // so that packets to 203.0.113.0/24 would leave
	}
	x.Must("ip", "addr", "add", "203.0.113.7/32", "dev", "eth0")
	b.serve()
	offLinkCounters(t, b)
	w := b.qr()
	out := x.RunTest(t, "TestHelperAttackLocal", "ATTACK_URL=http://10.1.0.2:"+strconv.Itoa(b.port())+"/p/offer")
	r := result(t, out)
	got := readOffLink(t, b)
	t.Logf("attacker: %v; b's packets to 203.0.113.0/24: %v", r, got)
	if r["answered"] != 1 {
		t.Fatalf("the attacker's offer was not answered: %v", r)
	}
	if got["any"] != 0 {
		t.Fatalf("b sent packets off its links: %v", got)
	}
	if !strings.Contains(b.daemon.Stderr(), "off our links dropped") {
		t.Fatalf("b did not say it dropped packets off its links:\n%s", b.daemon.Stderr())
	}
	status := browse(t, a.Host, w.URL, t.TempDir(), "a real phone after the attack")
	if !strings.HasPrefix(status, "Paired.") {
		t.Fatalf("a real browser after the attack: %q", status)
	}
	if ps := b.peers(); len(ps) != 1 || ps[0].Kind != "browser" {
		t.Fatalf("b's peers: %+v", ps)
	}
}

func TestHelperAttackLocal(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackLocalCandidates")
	}
	counts := map[string]int{}
	defer printResult(t, counts)
	// The attacker's own mDNS responder: its name is 203.0.113.5.
	name := fmt.Sprintf("%x.local", time.Now().UnixNano())
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	zone, err := mdns.NewMDNSService("attacker", "_attack._udp", "local.", name+".", 9, []net.IP{net.ParseIP("203.0.113.5")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: ifi})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	id := attacker(t)
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{rtc.Certificate(id.Key, id.Cert)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel("pairing", nil); err != nil {
		t.Fatal(err)
	}
	offer, _ := pc.CreateOffer(nil)
	done := webrtc.GatheringCompletePromise(pc)
	pc.SetLocalDescription(offer)
	<-done
	// Only .local candidates in the offer; the agent still checks from
	// every address it has, 203.0.113.7 among them.
	sdp := regexp.MustCompile(`a=candidate:[^\r\n]*\r\n`).ReplaceAllString(pc.LocalDescription().SDP, "")
	local := fmt.Sprintf("a=candidate:1 1 udp 2122260223 %s 40001 typ host\r\na=candidate:2 1 tcp 1518280447 %s 40002 typ host tcptype passive\r\n", name, name)
	if strings.Contains(sdp, "a=end-of-candidates") {
		sdp = strings.Replace(sdp, "a=end-of-candidates", local+"a=end-of-candidates", 1)
	} else {
		sdp += local
	}
	status, body := postOffer(t, os.Getenv("ATTACK_URL"), sdp)
	if status != http.StatusOK {
		t.Fatalf("offer answered %d: %s", status, body)
	}
	counts["answered"]++
	var ans pairing.ConnectMessage
	json.Unmarshal(body, &ans)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	// The daemon resolves the names and checks pairs for a few seconds.
	time.Sleep(8 * time.Second)
	if pc.ICEConnectionState() == webrtc.ICEConnectionStateConnected {
		counts["connected"]++
	}
}

// postOffer posts an offer to a daemon's page endpoint, as a page does.
func postOffer(t *testing.T, url, sdp string) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(pairing.ConnectMessage{SDP: sdp})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", strings.TrimSuffix(url, "/p/offer"))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// slowSize is what each slow transfer announces, and slowInbox the
// daemon's inbox limit: three of them hold all but 4 MiB of it.
const (
	slowSize  = 20 << 20
	slowInbox = 64
)

// TestAttackSlowSender: a paired device (a daemon and a page on host x)
// sends three files at once, one byte every few seconds: over the
// direct TLS path, its data channel, and its page's channel. Together
// they reserve almost the whole inbox, so a real file is refused while
// they run. The daemon ends each of them after its progress window
// (rtc.ProgressWindow) and frees the reservations: the same file then
// arrives, a's send works, and no partial file is left.
func TestAttackSlowSender(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, x := attackLAN(t, 1)
	conf := filepath.Join(t.TempDir(), "pairing.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("max-inbox-mb = %d\nmax-file-mb = 32\n", slowInbox)), 0o644); err != nil {
		t.Fatal(err)
	}
	b.serve("--config", conf)
	a.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing a: %s", stderr)
	}
	ids := t.TempDir()
	x.RunTest(t, "TestHelperAttackSlow", "ATTACK_MODE=pair-device", "ATTACK_URL="+b.qr().URL, "ATTACK_IDS="+ids)
	x.RunTest(t, "TestHelperAttackSlow", "ATTACK_MODE=pair-browser", "ATTACK_URL="+b.qr().URL, "ATTACK_IDS="+ids)
	if ps := b.peers(); len(ps) != 3 {
		t.Fatalf("b's peers after x paired twice: %+v", ps)
	}
	w := b.qr() // for its fingerprint and address; x is paired already
	out := x.RunTest(t, "TestHelperAttackSlow", "ATTACK_MODE=slow", "ATTACK_URL="+w.URL, "ATTACK_IDS="+ids)
	r := result(t, out)
	t.Logf("attacker: %v", r)
	for _, k := range []string{"tls_ready", "dc_ready", "page_ready"} {
		if r[k] != 1 {
			t.Fatalf("a slow transfer did not start (%s): %v", k, r)
		}
	}
	if r["held_refused"] != 1 {
		t.Fatalf("a file was not refused while the slow ones held the inbox: %v", r)
	}
	for _, k := range []string{"tls_ended", "dc_ended", "page_ended"} {
		if r[k] != 1 {
			t.Fatalf("a slow transfer was never ended by the daemon (%s): %v", k, r)
		}
	}
	if r["after_ok"] != 1 {
		t.Fatalf("the reservations were not freed: a file after the slow ones: %v", r)
	}
	partial, _ := filepath.Glob(filepath.Join(b.state, "inbox", ".incoming-*"))
	if len(partial) != 0 {
		t.Fatalf("partial files left: %v", partial)
	}
	if _, stderr, code := a.send("b", "after the slow sender"); code != 0 {
		t.Fatalf("a legitimate send after the attack: %s", stderr)
	}
	if ps := b.peers(); len(ps) != 3 {
		t.Fatalf("b's peers after the attack: %+v", ps)
	}
}

func TestHelperAttackSlow(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackSlowSender")
	}
	counts := map[string]int{}
	defer printResult(t, counts)
	p, err := pairing.ParsePayload(os.Getenv("ATTACK_URL"))
	if err != nil {
		t.Fatal(err)
	}
	ids := os.Getenv("ATTACK_IDS")
	for _, d := range []string{"device", "browser"} {
		if err := os.MkdirAll(filepath.Join(ids, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := pairing.LoadIdentity(filepath.Join(ids, "device"))
	if err != nil {
		t.Fatal(err)
	}
	br, err := pairing.LoadIdentity(filepath.Join(ids, "browser"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.AddrPort{netip.AddrPortFrom(p.Host, p.Port)}
	pageURL := fmt.Sprintf("http://%s/p/offer", addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	switch os.Getenv("ATTACK_MODE") {
	case "pair-device":
		store, err := pairing.OpenStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pairing.Join(ctx, p, pairing.JoinOptions{Identity: dev, Store: store, Name: "slow device"}); err != nil {
			t.Fatal(err)
		}
		return
	case "pair-browser":
		ch := pageChannel(ctx, t, br, p.Fingerprint, pageURL)
		mac := hmac.New(sha256.New, p.Secret)
		mac.Write([]byte("pairing browser proof v1"))
		mac.Write(p.Fingerprint[:])
		mac.Write(br.Fingerprint[:])
		ch.text(t, map[string]any{"t": "pair", "proof": base64.StdEncoding.EncodeToString(mac.Sum(nil)), "name": "slow page"})
		if m := ch.next(ctx); m["t"] != "paired" {
			t.Fatalf("pairing the page: %v", m)
		}
		return
	}
	// Three slow files at once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	set := func(k string) { mu.Lock(); counts[k] = 1; mu.Unlock() }
	ready := make(chan struct{}, 3)
	wg.Add(3)
	go func() {
		defer wg.Done()
		r := &trickle{ctx: ctx, every: 3 * time.Second, started: func() { set("tls_ready"); ready <- struct{}{} }}
		_, _, err := session.SendFileTLS(ctx, dev, p.Fingerprint, addrs, "slow-tls.bin", slowSize, r)
		t.Logf("direct: %v", err)
		if err != nil && ctx.Err() == nil {
			set("tls_ended")
		}
	}()
	slowChannel := func(ch *rawChannel, name string) {
		defer wg.Done()
		ch.text(t, map[string]any{"t": "file", "name": "slow-" + name + ".bin", "size": slowSize})
		if m := ch.next(ctx); m["t"] != "ready" {
			t.Logf("%s: %v", name, m)
			return
		}
		set(name + "_ready")
		ready <- struct{}{}
		for ctx.Err() == nil {
			ch.dc.Send([]byte{0})
			select {
			case m := <-ch.in:
				t.Logf("%s: %v", name, m)
				if m["t"] == "ack" && m["ok"] != true {
					set(name + "_ended")
					return
				}
			case <-time.After(3 * time.Second):
			case <-ch.closed:
				set(name + "_ended")
				return
			}
		}
	}
	go slowChannel(deviceChannel(ctx, t, dev, p.Fingerprint, addrs), "dc")
	go slowChannel(pageChannel(ctx, t, br, p.Fingerprint, pageURL), "page")
	for range 3 {
		select {
		case <-ready:
		case <-ctx.Done():
			t.Fatal("the slow transfers did not start")
		}
	}
	// They hold the inbox: a real file does not fit now.
	if _, _, err := session.SendFileTLS(ctx, dev, p.Fingerprint, addrs, "held.bin", slowSize, bytes.NewReader(make([]byte, slowSize))); err != nil && strings.Contains(err.Error(), "inbox full") {
		set("held_refused")
	} else {
		t.Logf("a file while the slow ones run: %v", err)
	}
	wg.Wait()
	// Ended, and their reservations freed: the file fits.
	actx, acancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer acancel()
	if _, _, err := session.SendFileTLS(actx, dev, p.Fingerprint, addrs, "after.bin", slowSize, bytes.NewReader(make([]byte, slowSize))); err == nil {
		set("after_ok")
	} else {
		t.Logf("a file after the slow ones: %v", err)
	}
}

// trickle is a file body that gives one byte every so often.
type trickle struct {
	ctx     context.Context
	every   time.Duration
	started func()
	once    sync.Once
}

func (r *trickle) Read(p []byte) (int, error) {
	r.once.Do(r.started)
	select {
	case <-time.After(r.every):
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	}
	p[0] = 0
	return 1, nil
}

// rawChannel is a data channel the attacker speaks the protocol on by
// hand.
type rawChannel struct {
	s      *rtc.Session
	dc     *webrtc.DataChannel
	in     chan map[string]any
	closed chan struct{}
}

func newRawChannel(ctx context.Context, t *testing.T, s *rtc.Session) *rawChannel {
	t.Helper()
	dc, err := s.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch := &rawChannel{s: s, dc: dc, in: make(chan map[string]any, 64), closed: make(chan struct{})}
	var once sync.Once
	dc.OnClose(func() { once.Do(func() { close(ch.closed) }) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var v map[string]any
		if json.Unmarshal(m.Data, &v) == nil {
			select {
			case ch.in <- v:
			default:
			}
		}
	})
	t.Cleanup(func() { s.Close() })
	return ch
}

func (ch *rawChannel) text(t *testing.T, v any) {
	b, _ := json.Marshal(v)
	if err := ch.dc.SendText(string(b)); err != nil {
		t.Fatal(err)
	}
}

func (ch *rawChannel) next(ctx context.Context) map[string]any {
	select {
	case m := <-ch.in:
		return m
	case <-ch.closed:
		return map[string]any{"t": "closed"}
	case <-ctx.Done():
		return map[string]any{"t": "timeout"}
	}
}

// deviceChannel is a paired device's connection to the daemon (connect
// over pinned TLS), as `pairing send` makes it.
func deviceChannel(ctx context.Context, t *testing.T, id *pairing.Identity, to ident.Fingerprint, addrs []netip.AddrPort) *rawChannel {
	t.Helper()
	s, offer, err := rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(id.Key, id.Cert)}).Offer(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := pairing.Signal(ctx, id, to, addrs, offer)
	if err == nil {
		err = s.Finish(answer)
	}
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return newRawChannel(ctx, t, s)
}

// pageChannel is a page's connection (an offer over plain HTTP).
func pageChannel(ctx context.Context, t *testing.T, id *pairing.Identity, to ident.Fingerprint, url string) *rawChannel {
	t.Helper()
	s, offer, err := rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(id.Key, id.Cert)}).Offer(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	status, body := postOffer(t, url, offer)
	var ans pairing.ConnectMessage
	json.Unmarshal(body, &ans)
	if status != http.StatusOK {
		s.Close()
		t.Fatalf("page offer: %d %s", status, body)
	}
	if err := s.Finish(ans.SDP); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return newRawChannel(ctx, t, s)
}

// TestAttackPeerCaps: what a device holds at once is capped. A paired
// device (on x) starts 10 files at once over the direct path: at most 4
// are taken, the rest refused at once. It opens 12 connections: at most
// 4 stay open (the oldest close). A stranger's page (inside a window)
// sends requests and never reads the answers: its channel is closed and
// the daemon's memory stays bounded. The daemon keeps serving: its
// paired list is intact and a's send works.
func TestAttackPeerCaps(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, x := attackLAN(t, 1)
	b.serve()
	a.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing a: %s", stderr)
	}
	ids := t.TempDir()
	x.RunTest(t, "TestHelperAttackSlow", "ATTACK_MODE=pair-device", "ATTACK_URL="+b.qr().URL, "ATTACK_IDS="+ids)
	w := b.qr() // strangers may offer now
	r := result(t, x.RunTest(t, "TestHelperAttackCaps", "ATTACK_PART=caps", "ATTACK_URL="+w.URL, "ATTACK_IDS="+ids))
	t.Logf("attacker: %v", r)
	if r["files_taken"] > 4 || r["files_refused"] < 6 {
		t.Fatalf("files arriving at once from one device: %v, want at most 4 taken", r)
	}
	if r["conns_opened"] != 12 || r["conns_open"] > 4 {
		t.Fatalf("connections of one device: %v, want at most 4 left open", r)
	}
	before := rssMB(t, b.daemon.Pid())
	r = result(t, x.RunTest(t, "TestHelperAttackCaps", "ATTACK_PART=flood", "ATTACK_URL="+w.URL, "ATTACK_IDS="+ids))
	after := rssMB(t, b.daemon.Pid())
	t.Logf("flood: %v; daemon RSS %.1f → %.1f MB", r, before, after)
	if r["flood_closed"] != 1 {
		t.Fatalf("the channel whose peer never reads was not closed: %v", r)
	}
	if after-before > 64 {
		t.Fatalf("the daemon grew by %.1f MB during the flood", after-before)
	}
	select {
	case <-b.daemon.Done():
		t.Fatalf("the daemon exited:\n%s", b.daemon.Stderr())
	default:
	}
	if ps := b.peers(); len(ps) != 2 {
		t.Fatalf("b's peers after the attack: %+v", ps)
	}
	if _, stderr, code := a.send("b", "after the caps"); code != 0 {
		t.Fatalf("a legitimate send after the attack: %s", stderr)
	}
}

// floodMessages is how many requests the stranger sends unread.
const floodMessages = 200_000

func TestHelperAttackCaps(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackPeerCaps")
	}
	counts := map[string]int{}
	defer printResult(t, counts)
	p, err := pairing.ParsePayload(os.Getenv("ATTACK_URL"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := pairing.LoadIdentity(filepath.Join(os.Getenv("ATTACK_IDS"), "device"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.AddrPort{netip.AddrPortFrom(p.Host, p.Port)}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	if os.Getenv("ATTACK_PART") == "flood" {
		// A stranger's page that sends and never reads what comes back.
		counts["flood_closed"] = 0
		if flooded(ctx, t, pairingURL(addrs[0])) {
			counts["flood_closed"] = 1
		}
		return
	}

	// Ten files at once: the refused ones answer at once, the taken ones
	// wait for bytes (and end when fctx does).
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	var wg sync.WaitGroup
	var taken, refused atomic.Int32
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := &trickle{ctx: fctx, every: time.Second, started: func() {}}
			_, _, err := session.SendFileTLS(fctx, dev, p.Fingerprint, addrs, fmt.Sprintf("many-%d.bin", i), 1<<20, body)
			if err != nil && fctx.Err() == nil && strings.Contains(err.Error(), "too many files") {
				refused.Add(1)
			} else {
				taken.Add(1)
			}
		}()
	}
	wg.Wait()
	fcancel()
	counts["files_taken"], counts["files_refused"] = int(taken.Load()), int(refused.Load())

	// Twelve connections of one device.
	var chans []*rawChannel
	for range 12 {
		chans = append(chans, deviceChannel(ctx, t, dev, p.Fingerprint, addrs))
		counts["conns_opened"]++
	}
	open := func() int {
		n := 0
		for _, ch := range chans {
			select {
			case <-ch.closed:
			case <-ch.s.Done():
			default:
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); open() > 4 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	counts["conns_open"] = open()
	for _, ch := range chans {
		ch.s.Close()
	}
}

func pairingURL(a netip.AddrPort) string { return fmt.Sprintf("http://%s/p/offer", a) }

// flooded opens a stranger's page channel that never reads (a detached
// channel, never read: its SCTP window closes), sends floodMessages
// requests, and reports whether the daemon closed the channel.
func flooded(ctx context.Context, t *testing.T, url string) bool {
	id := attacker(t)
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.DetachDataChannels()
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{rtc.Certificate(id.Key, id.Cert)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dc, err := pc.CreateDataChannel("pairing", nil)
	if err != nil {
		t.Fatal(err)
	}
	type writer interface {
		WriteDataChannel([]byte, bool) (int, error)
		Read([]byte) (int, error)
	}
	raw := make(chan writer, 1)
	dc.OnOpen(func() {
		if rw, err := dc.Detach(); err == nil {
			raw <- rw.(writer)
		}
	})
	offer, _ := pc.CreateOffer(nil)
	done := webrtc.GatheringCompletePromise(pc)
	pc.SetLocalDescription(offer)
	<-done
	status, body := postOffer(t, url, pc.LocalDescription().SDP)
	if status != http.StatusOK {
		t.Fatalf("stranger's offer: %d %s", status, body)
	}
	var ans pairing.ConnectMessage
	json.Unmarshal(body, &ans)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	var w writer
	select {
	case w = <-raw:
	case <-ctx.Done():
		t.Fatal("the stranger's channel did not open")
	}
	msg := []byte(`{"t":"x"}`)
	for i := range floodMessages {
		if _, err := w.WriteDataChannel(msg, true); err != nil {
			t.Logf("write %d: %v", i, err)
			break
		}
		if i%1000 == 0 && ctx.Err() != nil {
			return false
		}
	}
	// Now read: what the daemon sent before it closed the channel, then
	// the end of the stream (its reset) if it closed it.
	ended := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := w.Read(buf); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		t.Logf("after the flood: %v", err)
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}
