package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
)

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
	// The direct path by default, then the data channel when asked for.
	for i, path := range []string{"tls", "webrtc"} {
		args := []string{"--file", file}
		if i > 0 {
			args = append(args, "--path", path)
		}
		res, stderr, code := a.send(append([]string{"b"}, args...)...)
		if code != 0 || res.SHA256 != hex.EncodeToString(want[:]) || res.Bytes != int64(len(data)) || res.Path != path {
			t.Fatalf("send file: exit %d %+v: %s", code, res, stderr)
		}
		t.Logf("50 MB over %s: connect %.0f ms, total %.0f ms, pair %s", res.Path, res.ConnectMS, res.DurationMS, res.Pair)
	}
	items := b.inbox()
	if len(items) != 3 || items[0].Kind != "text" || items[0].Text != "hello there" || items[0].Name != "a" ||
		items[1].Kind != "file" || items[1].File != "big.bin" || items[1].SHA256 != hex.EncodeToString(want[:]) ||
		items[2].File != "big (2).bin" || items[2].SHA256 != items[1].SHA256 {
		t.Fatalf("b's inbox: %+v", items)
	}
	// pion's per-packet complaints of a fast transfer do not flood the
	// log (even at debug: repeats are limited and counted).
	if n := strings.Count(b.daemon.Stderr(), "buffer is full"); n > 20 {
		t.Errorf("%d 'buffer is full' lines in b's log", n)
	}
	for _, name := range []string{"big.bin", "big (2).bin"} {
		got, err := os.ReadFile(filepath.Join(b.state, "inbox", name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s in b's inbox differs: %v", name, err)
		}
	}
	// a's status shows the direct transfer, and the WebRTC connection's
	// sequence and selected pair.
	st, _ := a.status()
	var c, direct control.Connection
	for _, x := range st.Connections {
		if x.Path == "webrtc" {
			c = x
		} else if x.Path == "tls" && x.Role == "send" {
			direct = x
		}
	}
	if len(direct.Events) != 2 || direct.Events[1].State != "done" {
		t.Errorf("the direct transfer in a's status: %+v", direct)
	}
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

// startCoturn runs coturn in h, listening and relaying on ip, with the
// REST shared secret S3cret (TESTING.md's recipe).
func startCoturn(t *testing.T, h *lantest.Host, ip string) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/turnserver"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("needs coturn (apt-get install coturn; 'make test' does it)")
	}
	dir := t.TempDir()
	h.Start("turnserver", "-n", "--listening-ip="+ip, "--listening-port=3478", "--relay-ip="+ip,
		"--min-port=49152", "--max-port=49252", "--realm=test.local", "--use-auth-secret", "--static-auth-secret=S3cret",
		"--fingerprint", "--no-tls", "--no-dtls", "--no-cli",
		"--userdb="+filepath.Join(dir, "turndb"), "--pidfile="+filepath.Join(dir, "turn.pid"), "--log-file=stdout")
	h.WaitUDP(t, 3478)
}

func writeConf(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "pairing.conf")
	os.WriteFile(p, []byte(text), 0o644)
	return p
}

func TestSendRelayOnly(t *testing.T) {
	for _, c := range []struct {
		secret string
		ok     bool
	}{{"S3cret", true}, {"wrong", false}} {
		t.Run(c.secret, func(t *testing.T) {
			conf := writeConf(t, "turn = turn:10.1.0.1:3478?transport=udp\nturn-user = pair\nturn-secret = "+c.secret+"\nrelay-only = true\n")
			a, b := twoHosts(t, "--config", conf)
			startCoturn(t, a.Host, "10.1.0.1")
			b.serve("--config", conf)
			if _, stderr, code := a.join(b.qr().URL); code != 0 {
				t.Fatalf("pairing: %s", stderr)
			}
			res, stderr, code := a.send("b", "through the relay")
			if !c.ok {
				if code != 1 || !strings.Contains(stderr, "the TURN server refused the credentials") {
					t.Fatalf("wrong secret: exit %d %s", code, stderr)
				}
				return
			}
			if code != 0 || !strings.Contains(res.Pair, "relay") {
				t.Fatalf("relay-only send: exit %d %+v %s", code, res, stderr)
			}
			t.Logf("relay: connect %.0f ms, pair %s", res.ConnectMS, res.Pair)
			if items := b.inbox(); len(items) != 1 || items[0].Text != "through the relay" {
				t.Fatalf("b's inbox: %+v", items)
			}
		})
	}
}

func TestSendRefusedByReceiver(t *testing.T) {
	a, b := pairedPair(t, "--config", writeConf(t, "max-file-mb = 1\n"))
	file := filepath.Join(t.TempDir(), "two.bin")
	os.WriteFile(file, make([]byte, 2<<20), 0o644)
	if _, stderr, code := a.send("b", "--file", file); code != 1 || !strings.Contains(stderr, "file too large") {
		t.Fatalf("too large: exit %d %s", code, stderr)
	}
	if items := b.inbox(); len(items) != 0 {
		t.Fatalf("b's inbox: %+v", items)
	}
	entries, _ := os.ReadDir(filepath.Join(b.state, "inbox"))
	for _, e := range entries {
		if e.Name() != ".pairing" { // the log and the files being received
			t.Fatalf("left in b's inbox: %s", e.Name())
		}
	}
	if !strings.Contains(b.daemon.Stderr(), "inbox: file refused") {
		t.Error("the refusal was not logged")
	}
	// A bad request is refused before connecting.
	before, _ := a.status()
	if _, stderr, code := a.send("b", strings.Repeat("x", 33<<10)); code != 1 || !strings.Contains(stderr, "at most 32 KiB") {
		t.Fatalf("33 KiB text: exit %d %s", code, stderr)
	}
	if after, _ := a.status(); len(after.Connections) != len(before.Connections) {
		t.Fatalf("a connected for a text it refuses: %d connections, then %d", len(before.Connections), len(after.Connections))
	}
	// Not paired: refused before anything is set up.
	if _, stderr, code := a.send("nobody", "hi"); code != 1 || !strings.Contains(stderr, `no paired device matches "nobody"`) {
		t.Fatalf("unknown peer: exit %d %s", code, stderr)
	}
}

// TestSendConnectionLifecycle: a second send reuses the connection; a
// receiver that died or stopped is noticed and the next send connects
// anew; idle
// connections close on the sending side and, when the sender vanished, on
// the receiving side.
func TestSendConnectionLifecycle(t *testing.T) {
	aConf := writeConf(t, "connection-idle = 5s\n")
	bConf := writeConf(t, "connection-idle = 1s\n") // b closes after 2 s
	a, b := pairedWith(t, []string{"--config", aConf}, []string{"--config", bConf})
	send := func(text string) control.SendResult {
		t.Helper()
		res, stderr, code := a.send("b", text)
		if code != 0 {
			t.Fatalf("send %q: exit %d: %s", text, code, stderr)
		}
		return res
	}
	if one, two := send("one"), send("two"); one.Reused || !two.Reused {
		t.Fatalf("first send reused %v, second reused %v; want a new connection, then the same", one.Reused, two.Reused)
	}
	if st, _ := a.status(); len(st.Connections) != 1 {
		t.Fatalf("a made %d connections for two sends: %s", len(st.Connections), st.raw)
	}

	// b crashes and comes back: the kept connection looks open to a (ICE
	// has not noticed yet) but does not answer.
	b.daemon.Kill()
	if strings.Contains(b.daemon.Stderr(), "WARNING: DATA RACE") {
		t.Errorf("data race in b's first daemon:\n%s", b.daemon.Stderr())
	}
	b.serve("--config", bConf)
	if three := send("three"); three.Reused {
		t.Fatal("the send after b's restart claims to reuse the dead connection")
	}
	if !strings.Contains(a.daemon.Stderr(), "webrtc: kept connection") {
		t.Errorf("a did not log why it reconnected:\n%s", a.daemon.Stderr())
	}
	var texts []string
	for _, it := range b.inbox() {
		texts = append(texts, it.Text)
	}
	if strings.Join(texts, ",") != "one,two,three" {
		t.Fatalf("b's inbox: %q", texts)
	}

	// b stops cleanly: the connection closes on a's side at once, and the
	// next send connects anew without waiting for a ping.
	b.daemon.Stop()
	b.serve("--config", bConf)
	if four := send("four"); four.Reused {
		t.Fatal("the send after b's clean restart claims to reuse the closed connection")
	}
	var timeouts int
	for _, l := range strings.Split(a.daemon.Stderr(), "\n") {
		if strings.Contains(l, "webrtc: kept connection") && strings.Contains(l, "deadline exceeded") {
			timeouts++
		}
	}
	if timeouts != 1 {
		t.Errorf("a waited for %d pings (want 1, after the kill); it should see at once that b closed the connection:\n%s", timeouts, a.daemon.Stderr())
	}

	// Idle on a's side: closed after 5 s, and the next send connects anew.
	lantest.Eventually(t, 15*time.Second, func() error {
		if !strings.Contains(a.daemon.Stderr(), "webrtc: closing idle connection") {
			return errors.New("a has not closed its idle connection")
		}
		return nil
	})
	if five := send("five"); five.Reused {
		t.Fatal("the send after the idle close claims to reuse the connection")
	}
	// The sender vanishes: b closes the connection once idle for 2 s.
	a.daemon.Kill()
	lantest.Eventually(t, 15*time.Second, func() error {
		if !strings.Contains(b.daemon.Stderr(), "webrtc: closing idle connection") {
			return errors.New("b has not closed the connection of the vanished sender")
		}
		return nil
	})
}

// TestSendSettingsReload: SIGHUP applies the inbox limits and the WebRTC
// settings to the next send (closing the kept connection), and says which
// setting needs a restart.
func TestSendSettingsReload(t *testing.T) {
	aConf, bConf := writeConf(t, "name = a\n"), writeConf(t, "name = b\n")
	a, b := pairedWith(t, []string{"--config", aConf}, []string{"--config", bConf})
	file := filepath.Join(t.TempDir(), "two.bin")
	os.WriteFile(file, make([]byte, 2<<20), 0o644)
	if _, stderr, code := a.send("b", "--file", file); code != 0 {
		t.Fatalf("send before the reload: %s", stderr)
	}
	reload := func(n *node, conf, text string, reloads int) {
		t.Helper()
		os.WriteFile(conf, []byte(text), 0o644)
		n.daemon.Signal(syscall.SIGHUP)
		lantest.Eventually(t, 5*time.Second, func() error {
			if strings.Count(n.daemon.Stderr(), "config reloaded") < reloads {
				return errors.New("not reloaded yet")
			}
			return nil
		})
	}
	reload(b, bConf, "name = b\nmax-file-mb = 1\ninbox = /nonexistent/elsewhere\n", 1)
	if _, stderr, code := a.send("b", "--file", file); code != 1 || !strings.Contains(stderr, "file too large") {
		t.Fatalf("after b's reload with max-file-mb = 1: exit %d: %s", code, stderr)
	}
	if !strings.Contains(b.daemon.Stderr(), `msg="setting changed but needs a restart" key=inbox`) {
		t.Errorf("b did not say the inbox needs a restart:\n%s", b.daemon.Stderr())
	}
	// a keeps a direct connection (the refused file closed the last
	// one); relay-only with no TURN server must refuse the next send
	// rather than reuse it.
	for i := range 2 {
		if res, stderr, code := a.send("b", "hi"); code != 0 || res.Reused != (i == 1) {
			t.Fatalf("text %d: exit %d, reused %v: %s", i, code, res.Reused, stderr)
		}
	}
	reload(a, aConf, "name = a\nrelay-only = true\n", 1)
	if _, stderr, code := a.send("b", "hi"); code != 1 || !strings.Contains(stderr, "no TURN relay candidate") {
		t.Fatalf("after a's reload with relay-only: exit %d: %s", code, stderr)
	}
}

// partial lists the partial files in n's inbox.
func (n *node) partial() []string {
	p, _ := filepath.Glob(filepath.Join(n.state, "inbox", ".pairing", "incoming-*"))
	return p
}

// startBigSend starts sending a 1 GiB (sparse) file from a to b and waits
// until b has some of it.
func startBigSend(t *testing.T, a, b *node) *lantest.Proc {
	t.Helper()
	file := filepath.Join(t.TempDir(), "big.bin")
	if err := os.Truncate(file, 0); err != nil {
		f, _ := os.Create(file)
		f.Close()
	}
	os.Truncate(file, 1<<30)
	send := a.Start(a.bin, "send", "--socket", a.socket, "b", "--file", file)
	lantest.Eventually(t, 15*time.Second, func() error {
		for _, p := range b.partial() {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 1<<20 {
				return nil
			}
		}
		return errors.New("no partial file in b's inbox yet")
	})
	return send
}

// TestSendInterrupted: a transfer cut off by either side keeps what
// arrived in the receiver's inbox for a resume (TestResume takes it up),
// the sender does not hang, on either path; what a crash left that
// cannot be resumed goes at the next start.
func TestSendInterrupted(t *testing.T) {
	for _, path := range []string{"tls", "webrtc"} {
		t.Run(path, func(t *testing.T) { testSendInterrupted(t, path) })
	}
}

// resumable lists the partial files in n's inbox that have their resume
// key beside them.
func (n *node) resumable() []string {
	var out []string
	for _, p := range n.partial() {
		key := filepath.Join(filepath.Dir(p), "resume-"+strings.TrimPrefix(filepath.Base(p), "incoming-")+".json")
		if _, err := os.Stat(key); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func testSendInterrupted(t *testing.T, path string) {
	bConf := writeConf(t, "connection-idle = 1s\n")
	aConf := writeConf(t, "transfer = "+path+"\n")
	a, b := pairedWith(t, []string{"--config", aConf}, []string{"--config", bConf})
	// The sender's daemon dies: b ends the transfer once the connection
	// is gone, and keeps the partial file for a resume.
	send := startBigSend(t, a, b)
	a.daemon.Kill()
	<-send.Done()
	lantest.Eventually(t, 15*time.Second, func() error {
		if !strings.Contains(b.daemon.Stderr(), "inbox: transfer interrupted") {
			return errors.New("b has not noticed the end of the transfer")
		}
		return nil
	})
	if p := b.resumable(); len(p) != 1 || len(b.partial()) != 1 {
		t.Fatalf("b keeps %v for a resume, partials %v", p, b.partial())
	}

	// The receiver's daemon dies: the send fails with a clear error, and
	// b's next start keeps the resumable partials and removes what
	// cannot be resumed.
	a.serve("--config", aConf)
	before := b.biggestPartial()
	send = startBigSend(t, a, b) // the same file: it resumes
	lantest.Eventually(t, 15*time.Second, func() error {
		if b.biggestPartial() < before+1<<20 {
			return errors.New("the resumed transfer has not moved yet")
		}
		return nil
	})
	b.daemon.Kill()
	start := time.Now()
	select {
	case <-send.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the send still runs a minute after the receiver died")
	}
	if !strings.Contains(send.Stderr(), "the connection to the device was lost") {
		t.Errorf("the send's error after %s: %s", time.Since(start).Round(time.Millisecond), send.Stderr())
	}
	t.Logf("the send failed %s after the receiver died: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(send.Stderr()))
	if len(b.resumable()) == 0 {
		t.Fatal("the crash left no partial file; the restart test proves nothing")
	}
	crash := filepath.Join(b.state, "inbox", ".pairing", "incoming-crash")
	os.WriteFile(crash, []byte("no key"), 0o600)
	kept := b.resumable()
	b.serve("--config", bConf)
	if p := b.partial(); len(p) != len(kept) || len(b.resumable()) != len(kept) {
		t.Fatalf("after b's restart: partials %v, resumable %v, want %v", p, b.resumable(), kept)
	}
	if !strings.Contains(b.daemon.Stderr(), "removed partial files") {
		t.Errorf("b did not log the removal:\n%s", b.daemon.Stderr())
	}
}

// TestDiscoveryDuringTransfer: a daemon receiving a file at full speed
// over the direct path still answers beacons.
func TestDiscoveryDuringTransfer(t *testing.T) {
	bin := rootBin(t)
	_, n := segmentOf(t, bin, false, "a", "b", "c")
	a, b, c := n[0], n[1], n[2]
	a.serve()
	b.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing: %s", stderr)
	}
	send := startBigSend(t, a, b)
	defer send.Kill()
	for i := range 3 {
		res, stderr, _ := c.discover("--timeout", "1s")
		p := peerNamed(res.Peers, "b")
		if p == nil {
			t.Fatalf("discover %d during the transfer did not find b: %+v %s", i, res.Peers, stderr)
		}
		t.Logf("b answered in %.1f ms during the transfer", p.ElapsedMS)
		if len(b.partial()) == 0 {
			t.Fatal("the transfer is over: the test proves nothing")
		}
	}
}
