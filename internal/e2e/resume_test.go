package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
)

// Sizes of the resume tests: the largest that keep each test under about
// 40 s with the race detector on this machine (the direct path moved
// about 60 MB/s under -race here, the data channel about 9 MB/s).
const (
	resumeSizeTLS    = 500 << 20
	resumeSizeWebRTC = 100 << 20
)

// randomBigFile writes size random bytes to a new file and returns its path
// and SHA-256.
func randomBigFile(t testing.TB, dir, name string, size int64) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

// biggestPartial is the size of the largest partial file in n's inbox.
func (n *node) biggestPartial() int64 {
	var most int64
	for _, p := range n.partial() {
		if fi, err := os.Stat(p); err == nil && fi.Size() > most {
			most = fi.Size()
		}
	}
	return most
}

// startSendTo starts `pairing send` of file from a to b over path and
// waits until b holds at least at bytes of it.
func startSendTo(t *testing.T, a, b *node, file, path string, at int64) *lantest.Proc {
	t.Helper()
	send := a.Start(a.bin, "send", "--json", "--socket", a.socket, "b", "--file", file, "--path", path)
	deadline := time.Now().Add(90 * time.Second)
	for b.biggestPartial() < at {
		select {
		case <-send.Done():
			t.Fatalf("the send ended before the cut: %s %s", send.Stdout(), send.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("b holds %d bytes after 90 s, waiting for %d", b.biggestPartial(), at)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return send
}

var receivedLine = regexp.MustCompile(`msg=received .*name=(\S+) bytes=(\d+) resumed_from=(\d+) moved=(\d+)`)

// received is what b's log says the last complete transfer of name
// carried: the bytes it already had and the bytes that moved.
func (n *node) received(name string) (resumedFrom, moved int64, err error) {
	var found bool
	for _, m := range receivedLine.FindAllStringSubmatch(n.daemon.Stderr(), -1) {
		if m[1] == name || m[1] == strconv.Quote(name) {
			resumedFrom, _ = strconv.ParseInt(m[3], 10, 64)
			moved, _ = strconv.ParseInt(m[4], 10, 64)
			found = true
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("no 'received' line for %s in the receiver's log", name)
	}
	return resumedFrom, moved, nil
}

// TestResume: a transfer cut at about half (the receiving daemon killed,
// or the receiver's network gone) continues where it stopped when the
// same file is sent again: fewer than 60 % of the bytes move the second
// time, counted by the receiver, and the SHA-256 of the whole file is
// right. On each path.
func TestResume(t *testing.T) {
	for _, path := range []string{"tls", "webrtc"} {
		for _, cut := range []string{"kill", "link"} {
			t.Run(path+"/"+cut, func(t *testing.T) { testResume(t, path, cut) })
		}
	}
}

func testResume(t *testing.T, path, cut string) {
	size := int64(resumeSizeTLS)
	if path == "webrtc" {
		size = resumeSizeWebRTC
	}
	bConf := writeConf(t, "connection-idle = 2s\n")
	a, b := pairedWith(t, nil, []string{"--config", bConf})
	file, sum := randomBigFile(t, t.TempDir(), "big.bin", size)
	start := time.Now()
	send := startSendTo(t, a, b, file, path, size/2)
	switch cut {
	case "kill":
		b.daemon.Kill()
		select {
		case <-send.Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the send still runs a minute after the receiver died")
		}
		b.serve("--config", bConf)
	case "link":
		ip := func(state string) {
			if out, err := exec.Command("ip", "-n", b.NS, "link", "set", "eth0", state).CombinedOutput(); err != nil {
				t.Fatalf("ip link set %s: %v %s", state, err, out)
			}
		}
		ip("down")
		// The person gives up on the hanging send, the network comes
		// back, and they send again at once: the receiver has not yet
		// noticed that the first transfer is dead.
		time.Sleep(time.Second)
		send.Kill()
		ip("up")
	}
	had := b.biggestPartial()
	t.Logf("cut (%s) after %s with %d of %d bytes at the receiver", cut, time.Since(start).Round(time.Millisecond), had, size)
	if had < size/3 {
		t.Fatalf("the receiver kept %d bytes of %d; the resume proves nothing", had, size)
	}
	second := time.Now()
	var res control.SendResult
	if cut == "kill" && path == "tls" {
		// What a person reads.
		out, stderr, err := a.Run(a.bin, "send", "--socket", a.socket, "b", "--file", file, "--path", path)
		if err != nil || !strings.Contains(out, "resumed at ") || !strings.Contains(out, "confirmed") {
			t.Fatalf("second send: %v\n%s%s", err, out, stderr)
		}
		t.Logf("second send said: %s", strings.TrimSpace(out))
		res = control.SendResult{SHA256: sum, Bytes: size, Path: path}
		res.ResumedBytes, _, _ = b.received("big.bin")
	} else {
		lantest.Eventually(t, 30*time.Second, func() error {
			r, stderr, code := a.send("b", "--file", file, "--path", path)
			if code != 0 {
				return fmt.Errorf("second send: exit %d: %s", code, stderr)
			}
			res = r
			return nil
		})
	}
	t.Logf("second send: %s, resumed at %d bytes", time.Since(second).Round(time.Millisecond), res.ResumedBytes)
	if res.SHA256 != sum || res.Bytes != size || res.Path != path {
		t.Fatalf("second send: %+v, want SHA-256 %s", res, sum)
	}
	from, moved, err := b.received("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if moved > size*6/10 || from+moved != size || res.ResumedBytes != from {
		t.Fatalf("the second send moved %d of %d bytes (resumed from %d, the sender says %d)", moved, size, from, res.ResumedBytes)
	}
	got, err := os.Open(filepath.Join(b.state, "inbox", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	h := sha256.New()
	io.Copy(h, got)
	if hex.EncodeToString(h.Sum(nil)) != sum {
		t.Fatal("the file in b's inbox differs from the one sent")
	}
	if p := b.partial(); len(p) != 0 {
		t.Fatalf("partial files left: %v", p)
	}
	if items := b.inbox(); len(items) != 1 || items[0].File != "big.bin" || items[0].SHA256 != sum {
		t.Fatalf("b's inbox: %+v", items)
	}
}

// TestSendFolder: files and a nested folder arrive with their relative
// paths; a folder holding a name the rules refuse (a right-to-left
// override; a hidden component) is refused before anything is sent, and
// the receiver's inbox holds nothing of it.
func TestSendFolder(t *testing.T) {
	a, b := pairedPair(t)
	src := t.TempDir()
	tree := map[string]string{
		"photos/2024/a.jpg":        "one",
		"photos/2024/summer/b.jpg": "two",
		"photos/c.txt":             "three",
	}
	for rel, data := range tree {
		p := filepath.Join(src, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	single := filepath.Join(t.TempDir(), "note.txt")
	os.WriteFile(single, []byte("four"), 0o644)
	for _, path := range []string{"tls", "webrtc"} {
		out, stderr, err := a.Run(a.bin, "send", "--json", "--socket", a.socket, "b", "--file", filepath.Join(src, "photos"), "--file", single, "--path", path)
		if err != nil {
			t.Fatalf("send the folder over %s: %v %s", path, err, stderr)
		}
		var res []control.SendResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 4 {
			t.Fatalf("send --json of 4 files: %v %s", err, out)
		}
	}
	inbox := filepath.Join(b.state, "inbox")
	for rel, data := range tree {
		for _, r := range []string{rel, strings.TrimSuffix(rel, filepath.Ext(rel)) + " (2)" + filepath.Ext(rel)} {
			got, err := os.ReadFile(filepath.Join(inbox, filepath.FromSlash(r)))
			if err != nil || string(got) != data {
				t.Fatalf("%s in b's inbox: %q %v", r, got, err)
			}
		}
	}
	var files []string
	for _, it := range b.inbox() {
		files = append(files, it.File)
	}
	if !strings.Contains(strings.Join(files, ","), "photos/2024/summer/b.jpg") || len(files) != 8 {
		t.Fatalf("b's inbox log: %q", files)
	}
	if fi, err := os.Stat(filepath.Join(inbox, "photos", "2024")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode: %v %v", fi, err)
	}

	// A name in the tree breaks the rules: nothing of the send is written.
	for _, bad := range []string{"evil/ok.txt\x00evil/invoice\u202efdp.exe", "evil2/ok.txt\x00evil2/.hidden/x.txt"} {
		dir := t.TempDir()
		for _, rel := range strings.Split(bad, "\x00") {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("x"), 0o644)
		}
		top := strings.SplitN(bad, "/", 2)[0]
		_, stderr, code := a.send("b", "--file", filepath.Join(dir, top))
		if code != 1 || !strings.Contains(stderr, "refused: not a plain file name") {
			t.Fatalf("a tree with a bad name: exit %d %s", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(inbox, top)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s reached b's inbox: %v", top, err)
		}
	}
	if len(b.inbox()) != 8 {
		t.Fatal("the refused sends left records")
	}
}

// TestResumeMismatch: the file changed after the cut (same name, size
// and first MiB, other bytes inside the part the receiver kept): the
// sender's prefix hash differs, the receiver removes its partial, and
// `pairing send` sends the file again from its start, which arrives
// whole and right. On each path.
func TestResumeMismatch(t *testing.T) {
	for _, path := range []string{"tls", "webrtc"} {
		t.Run(path, func(t *testing.T) {
			size := int64(100 << 20)
			if path == "webrtc" {
				size = 30 << 20
			}
			bConf := writeConf(t, "connection-idle = 2s\n")
			a, b := pairedWith(t, nil, []string{"--config", bConf})
			file, _ := randomBigFile(t, t.TempDir(), "big.bin", size)
			send := startSendTo(t, a, b, file, path, size/2)
			b.daemon.Kill()
			<-send.Done()
			b.serve("--config", bConf)
			if len(b.resumable()) != 1 {
				t.Fatalf("b keeps %v", b.partial())
			}
			f, _ := os.OpenFile(file, os.O_WRONLY, 0)
			f.WriteAt([]byte("changed"), 2<<20)
			f.Close()
			_, sum := hashFile(t, file)
			res, stderr, code := a.send("b", "--file", file, "--path", path)
			if code != 0 || res.SHA256 != sum || res.ResumedBytes != 0 {
				t.Fatalf("send of the changed file: exit %d %+v %s", code, res, stderr)
			}
			if _, moved, err := b.received("big.bin"); err != nil || moved != size {
				t.Fatalf("the changed file moved %d of %d bytes: %v", moved, size, err)
			}
			if !strings.Contains(b.daemon.Stderr(), "partial file removed: the sender's file differs") {
				t.Error("b did not log why it removed the partial")
			}
			if p := b.partial(); len(p) != 0 {
				t.Fatalf("partial files left: %v", p)
			}
		})
	}
}

func hashFile(t *testing.T, p string) (int64, string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, _ := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil))
}
