package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanpairing/pairing/internal/control"
)

// pairedPair: a and b serving (extra serve flags for both) and paired.
func pairedPair(t *testing.T, serveArgs ...string) (a, b *node) {
	a, b = twoHosts(t, serveArgs...)
	b.serve(serveArgs...)
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing a with b: %s", stderr)
	}
	return a, b
}

func (n *node) send(args ...string) (control.SendResult, string, int) {
	n.t.Helper()
	out, stderr, err := n.Run(n.bin, append([]string{"send", "--json", "--socket", n.socket}, args...)...)
	var res control.SendResult
	if exitCode(err) == 0 {
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
			n.t.Fatalf("send JSON: %v\n%s", jerr, out)
		}
	}
	return res, stderr, exitCode(err)
}

func (n *node) inbox() []control.InboxItem {
	n.t.Helper()
	out, stderr, err := n.Run(n.bin, "inbox", "--json", "--socket", n.socket)
	var items []control.InboxItem
	if err != nil || json.Unmarshal([]byte(out), &items) != nil {
		n.t.Fatalf("inbox: %v %s %s", err, out, stderr)
	}
	return items
}

func TestSendTextAndFile(t *testing.T) {
	a, b := pairedPair(t)
	if _, stderr, code := a.send("b", "hello", "there"); code != 0 {
		t.Fatalf("send text: exit %d: %s", code, stderr)
	}
	data := make([]byte, 50<<20)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "big.bin")
	os.WriteFile(file, data, 0o644)
	want := sha256.Sum256(data)
	res, stderr, code := a.send("b", "--file", file)
	if code != 0 || res.SHA256 != hex.EncodeToString(want[:]) || res.Bytes != int64(len(data)) {
		t.Fatalf("send file: exit %d %+v: %s", code, res, stderr)
	}
	t.Logf("50 MB: connect %.0f ms, total %.0f ms, pair %s", res.ConnectMS, res.DurationMS, res.Pair)
	items := b.inbox()
	if len(items) != 2 || items[0].Kind != "text" || items[0].Text != "hello there" || items[0].Name != "a" ||
		items[1].Kind != "file" || items[1].File != "big.bin" || items[1].SHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("b's inbox: %+v", items)
	}
	got, err := os.ReadFile(filepath.Join(b.state, "inbox", "big.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file in b's inbox differs: %v", err)
	}
	// a's status shows the connection sequence and the selected pair.
	st, _ := a.status()
	if len(st.Connections) == 0 {
		t.Fatal("no connection in a's status")
	}
	c := st.Connections[len(st.Connections)-1]
	var seq []string
	for _, e := range c.Events {
		seq = append(seq, e.What+":"+e.State)
	}
	joined := strings.Join(seq, " ")
	for _, want := range []string{"ice gathering:complete", "ice:checking", "ice:connected", "dtls:connected", "connection:connected", "data channel:open"} {
		if !strings.Contains(joined, want) {
			t.Errorf("sequence lacks %s: %s", want, joined)
		}
	}
	if !strings.Contains(c.Pair, "host 10.1.0.") {
		t.Errorf("selected pair %q", c.Pair)
	}
}
