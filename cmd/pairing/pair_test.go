package main

import (
	"encoding/json"
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/lanpairing/pairing/internal/control"
)

// twoHosts: a (10.1.0.1) and b (10.1.0.2) on one segment, a serving.
func twoHosts(t *testing.T) (a, b *node) {
	l, bin := lanWith(t)
	seg := l.Segment()
	ha, hb := l.Host("a"), l.Host("b")
	ha.Attach(seg, "10.1.0.1/24")
	hb.Attach(seg, "10.1.0.2/24")
	a, b = newNode(t, ha, bin), newNode(t, hb, bin)
	a.serve()
	return a, b
}

func (n *node) qr(args ...string) control.Window {
	n.t.Helper()
	out, errOut, err := n.Run(n.bin, append([]string{"qr", "--json", "--socket", n.socket}, args...)...)
	if err != nil {
		n.t.Fatalf("qr on %s: %v: %s", n.Name, err, errOut)
	}
	var w control.Window
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		n.t.Fatalf("qr JSON: %v\n%s", err, out)
	}
	return w
}

// join runs `pairing join --json URL` on n (no daemon there unless started).
func (n *node) join(url string, extra ...string) (control.JoinResult, string, int) {
	n.t.Helper()
	args := append([]string{"join", "--json", "--state-dir", n.state, "--socket", n.socket, "--name", n.Name}, extra...)
	out, errOut, err := n.Run(n.bin, append(args, url)...)
	var res control.JoinResult
	if exitCode(err) == 0 {
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
			n.t.Fatalf("join JSON: %v\n%s", jerr, out)
		}
	}
	return res, errOut, exitCode(err)
}

func (n *node) peers() []control.Paired {
	n.t.Helper()
	out, errOut, err := n.Run(n.bin, "peers", "--json", "--state-dir", n.state, "--socket", n.socket)
	if err != nil {
		n.t.Fatalf("peers on %s: %v: %s", n.Name, err, errOut)
	}
	var ps []control.Paired
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		n.t.Fatalf("peers JSON: %v\n%s", err, out)
	}
	return ps
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

func TestPairByQRCode(t *testing.T) {
	a, b := twoHosts(t)
	png := filepath.Join(t.TempDir(), "qr.png")
	w := a.qr("--png", png)
	url := decodeQR(t, png)
	if url != w.URL || !strings.HasPrefix(url, "http://10.1.0.1:") || !strings.Contains(url, "#v=1&fp=") {
		t.Fatalf("QR decodes to %q, want the window URL %q", url, w.URL)
	}
	if len(w.Code) != 6 || w.Port == 0 || w.Fingerprint == "" {
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
}
