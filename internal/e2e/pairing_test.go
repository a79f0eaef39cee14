package e2e

import (
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/lanpairing/pairing/internal/lantest"
)

func TestPairByQRCode(t *testing.T) {
	a, b := twoHosts(t)
	png := filepath.Join(t.TempDir(), "qr.png")
	w := a.qr("--png", png)
	url := decodeQR(t, png)
	if url != w.QRURL || !strings.HasPrefix(url, "http://10.1.0.1:") || !strings.Contains(url, "#v=1&fp=") || !strings.HasPrefix(w.URL, url) {
		t.Fatalf("QR decodes to %q, want the window's QR URL %q (a prefix of %q)", url, w.QRURL, w.URL)
	}
	// The terminal form fits 80×24 with room under it, and decodes.
	out, _, err := a.Run(a.bin, "qr", "--socket", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	qrText := strings.Split(out, "\n\n")[0]
	lines := strings.Split(qrText, "\n")
	if len(lines) > 21 || len([]rune(lines[0])) > 80 || lantest.DecodeModules(t, lantest.HalfBlockModules(lines)) != w.QRURL {
		t.Fatalf("terminal QR: %d lines of %d columns:\n%s", len(lines), len([]rune(lines[0])), qrText)
	}
	// --address chooses the host among the confirmed addresses only.
	if w2 := a.qr("--address", "10.1.0.1"); !strings.HasPrefix(w2.QRURL, "http://10.1.0.1:") {
		t.Fatalf("qr --address: %s", w2.QRURL)
	}
	if _, errOut, err := a.Run(a.bin, "qr", "--socket", a.socket, "--address", "10.9.9.9"); exitCode(err) != 1 || !strings.Contains(errOut, "not one of this device's confirmed addresses") {
		t.Fatalf("qr --address with a foreign address: exit %d: %s", exitCode(err), errOut)
	}
	if w.Code != "" || w.Port == 0 || w.Fingerprint == "" {
		t.Fatalf("window %+v", w)
	}
	res, stderr, code := b.join(url)
	if code != 0 {
		t.Fatalf("join: exit %d: %s", code, stderr)
	}
	st, _ := a.status()
	if res.Peer.ID != st.ID || res.Peer.Name != "a" || res.Peer.Fingerprint != w.Fingerprint || res.Via != "address" {
		t.Fatalf("joined %+v, want a (%s) by address", res.Peer, st.ID)
	}
	pa, pb := a.peers(), b.peers()
	if len(pa) != 1 || pa[0].Name != "b" || pa[0].Kind != "device" || !hasAddr(pa[0].Addresses, "10.1.0.2") {
		t.Fatalf("a's peers: %+v", pa)
	}
	if len(pb) != 1 || pb[0].Name != "a" || pb[0].ID != st.ID || !hasAddr(pb[0].Addresses, "10.1.0.1") {
		t.Fatalf("b's peers: %+v", pb)
	}
	// The window closed after the success: the same code cannot pair again.
	if _, stderr, code := b.join(url); code != 1 || !strings.Contains(stderr, "no pairing window is open") {
		t.Fatalf("second join with a used code: exit %d: %s", code, stderr)
	}
}

func TestPairWithStaleAddresses(t *testing.T) {
	a, b := twoHosts(t)
	b.serve() // this join goes through b's own daemon
	w := a.qr()
	// The addresses in the link are stale (the device moved); the
	// fingerprint and secret still find it by beacon.
	stale := strings.Replace(w.URL, "http://10.1.0.1:", "http://10.1.0.77:", 1)
	res, stderr, code := b.join(stale)
	if code != 0 || res.Peer.Name != "a" || res.Via != "beacon" {
		t.Fatalf("join with stale addresses: exit %d, %+v: %s", code, res, stderr)
	}
	if ps := a.peers(); len(ps) != 1 || ps[0].Name != "b" {
		t.Fatalf("a's peers: %+v", ps)
	}
	// b's daemon stored a, and sees it online.
	lantest.Eventually(t, 5*time.Second, func() error {
		ps := b.peers()
		if len(ps) != 1 || ps[0].Name != "a" || !ps[0].Online {
			return errorf("b's peers: %+v", ps)
		}
		return nil
	})
	if !strings.Contains(b.daemon.Stderr(), `msg=paired`) {
		t.Fatal("b's daemon did not do the join")
	}
}

func TestPairFailures(t *testing.T) {
	bin := rootBin(t)
	_, n := segmentOf(t, bin, false, "a", "b", "c")
	a, b, c := n[0], n[1], n[2]
	a.serve()
	w := a.qr()

	unchanged := func() {
		t.Helper()
		for _, x := range []*node{a, b, c} {
			if ps := x.peers(); len(ps) != 0 {
				t.Fatalf("%s's store changed after a failed join: %+v", x.Name, ps)
			}
		}
	}
	expectFail := func(x *node, url, want string) {
		t.Helper()
		_, stderr, code := x.join(url)
		if code != 1 || !strings.Contains(stderr, want) || !strings.HasPrefix(stderr, "pairing: ") {
			t.Fatalf("join on %s: exit %d, stderr %q; want exit 1 with %q", x.Name, code, stderr, want)
		}
	}

	// Wrong secret: a's window counts it; one source is stopped after 5,
	// and the window stays open with the same secret for the others.
	s := w.URL[strings.Index(w.URL, "&s=")+3:]
	s = s[:strings.Index(s, "&")]
	wrong := strings.Replace(w.URL, "&s="+s, "&s=AAAAAAAAAAAAAAAAAAAAAA", 1)
	for range 5 {
		expectFail(b, wrong, "wrong secret")
	}
	expectFail(b, wrong, "too many failed attempts")
	for range 4 {
		expectFail(c, wrong, "wrong secret")
	}
	unchanged()
	if w2 := a.qr(); w2.URL != w.URL {
		t.Fatal("wrong attempts below the cap replaced the secret")
	}
	// b is still held back, even with the right secret; c pairs.
	expectFail(b, w.URL, "too many failed attempts")
	if _, stderr, code := c.join(w.URL); code != 0 {
		t.Fatalf("join with the right secret: %d %s", code, stderr)
	}

	// A different daemon at the link's address: b's own daemon now serves
	// there, and a has gone away.
	w3 := a.qr()
	a.daemon.Stop()
	b.serve()
	bst, _ := b.status()
	fake := strings.Replace(w3.URL, "http://10.1.0.1:"+portOf(w3.URL), "http://10.1.0.2:"+itoa(bst.Port), 1)
	expectFail(c, fake, "not the one in the QR code")
}

func TestPairWindowExpires(t *testing.T) {
	a, b := twoHosts(t, "--pair-window", "1s")
	w := a.qr()
	time.Sleep(1200 * time.Millisecond)
	_, stderr, code := b.join(w.URL)
	if code != 1 || !strings.Contains(stderr, "no pairing window is open") || !strings.Contains(stderr, "run 'pairing qr'") {
		t.Fatalf("join after expiry: exit %d: %s", code, stderr)
	}
	if len(a.peers()) != 0 || len(b.peers()) != 0 {
		t.Fatal("a store changed")
	}
	if !strings.Contains(a.daemon.Stderr(), `msg="pairing window closed"`) {
		t.Fatal("the daemon did not log the window's expiry")
	}
	if res, _, _ := b.discover("--timeout", "1s"); len(res.Peers) != 1 || res.Peers[0].WindowOpen {
		t.Fatalf("beacons still say the window is open: %+v", res.Peers)
	}
}

func TestSecondServeRefused(t *testing.T) {
	a, _ := twoHosts(t)
	out, stderr, err := a.Run(a.bin, "serve", "--state-dir", a.state, "--socket", a.socket+"2")
	if exitCode(err) != 1 || !strings.Contains(stderr, "state directory in use by another pairing daemon") {
		t.Fatalf("second serve: exit %d\n%s%s", exitCode(err), out, stderr)
	}
	if _, err := a.status(); err != nil {
		t.Fatalf("the first daemon suffered: %v", err)
	}
}

func TestControlSocketOtherUID(t *testing.T) {
	a, _ := twoHosts(t)
	// Make every directory on the way traversable, so the socket's own
	// mode is what keeps another user out.
	for d := filepath.Dir(a.socket); d != "/" && d != "/tmp"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	out, stderr, err := a.Run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", a.bin, "status", "--socket", a.socket)
	if exitCode(err) != 1 || !strings.Contains(stderr, "this user may not use the pairing daemon: a daemon runs at "+a.socket) ||
		!strings.Contains(stderr, "adduser") {
		t.Fatalf("status as another uid: exit %d\n%s%s", exitCode(err), out, stderr)
	}
	if _, err := a.status(); err != nil {
		t.Fatalf("root cannot use the socket: %v", err)
	}
}

func TestPairByLinkAndCode(t *testing.T) {
	a, b := twoHosts(t, "--open")
	// serve --open logged the window it opened (its addresses, never
	// the URL, which carries the secret).
	lantest.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(a.daemon.Stderr(), `msg="pairing window open" fingerprint=`) {
			return errorf("no window in the log yet")
		}
		return nil
	})
	// Beacons say the window is open.
	res, _, _ := b.discover("--timeout", "1s")
	if p := peerNamed(res.Peers, "a"); p == nil || !p.WindowOpen {
		t.Fatalf("discover does not show a's open window: %+v", res.Peers)
	}
	// The human form of qr: the code, the link and the name.
	out, _, err := a.Run(a.bin, "qr", "--link", "--socket", a.socket)
	if err != nil || !strings.Contains(out, "▀") && !strings.Contains(out, "█") || !strings.Contains(out, "receiver types the code") {
		t.Fatalf("qr --link text: %v\n%s", err, out)
	}
	w := a.qr("--link")
	if strings.Contains(w.LinkURL, "&s=") || !strings.Contains(w.URL, "&s=") {
		t.Fatalf("link %q must have no secret; url %q must", w.LinkURL, w.URL)
	}
	if _, stderr, code := b.join(w.LinkURL, "--code", "999999"); code != 1 || !strings.Contains(stderr, "wrong code") && w.Code != "999999" {
		t.Fatalf("wrong code: exit %d %s", code, stderr)
	}
	// Without --code, join asks for it; the code goes only to the pinned
	// device, and this one pairs.
	out, stderr, err := b.RunInput(a.qr("--link").Code+"\n", b.bin, "join", "--json", "--state-dir", b.state, "--socket", b.socket, "--name", "b", w.LinkURL)
	if err != nil || !strings.Contains(stderr, "enter the 6-digit code shown on a:") || !strings.Contains(out, `"name": "a"`) {
		t.Fatalf("join asking for the code: %v\n%s\n%s", err, out, stderr)
	}
	if ps := a.peers(); len(ps) != 1 || ps[0].Name != "b" {
		t.Fatalf("a's peers: %+v", ps)
	}

	// unpair on a (daemon running) and on b (no daemon there).
	if out, stderr, err := a.Run(a.bin, "unpair", "--socket", a.socket, "b"); err != nil || !strings.Contains(out, "unpaired b") {
		t.Fatalf("unpair via daemon: %v %s %s", err, out, stderr)
	}
	bPeers := b.peers()
	if out, stderr, err := b.Run(b.bin, "unpair", "--state-dir", b.state, "--socket", b.socket, bPeers[0].ID[:6]); err != nil || !strings.Contains(out, "unpaired a") {
		t.Fatalf("unpair without daemon: %v %s %s", err, out, stderr)
	}
	if len(a.peers()) != 0 || len(b.peers()) != 0 {
		t.Fatal("unpair left peers behind")
	}
	if _, stderr, err := b.Run(b.bin, "unpair", "--state-dir", b.state, "--socket", b.socket, "nobody"); exitCode(err) != 1 || !strings.Contains(stderr, `no paired device matches "nobody"`) {
		t.Fatalf("unpair unknown: %s", stderr)
	}
}

// TestPairOverLinkLocal: a link-local address (with the joiner's zone)
// works as the URL's host.
func TestPairOverLinkLocal(t *testing.T) {
	a, b := twoHosts(t)
	w := a.qr()
	st, _ := a.status()
	var ll string
	for _, ad := range st.Addresses {
		if ad.IP.IsLinkLocalUnicast() {
			ll = ad.IP.WithZone("").String()
		}
	}
	if ll == "" {
		t.Fatalf("a has no link-local address: %+v", st.Addresses)
	}
	url := strings.Replace(w.URL, "http://10.1.0.1:", "http://["+ll+"%25eth0]:", 1)
	res, stderr, code := b.join(url)
	if code != 0 || res.Via != "address" {
		t.Fatalf("join over %s: exit %d %+v %s", url, code, res, stderr)
	}
}

func decodeQR(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decode QR PNG: %v", err)
	}
	return res.GetText()
}
