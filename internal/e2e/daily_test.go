package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDailyUse: a person names a device as they remember it (any case, a
// prefix), is told the paired names when none fits (not a network
// problem), sees where received files are and their size as people
// read it, clears the inbox, and reads one meaning of online in peers
// and status.
func TestDailyUse(t *testing.T) {
	a, b := pairedPair(t)
	if _, errOut, err := a.Run(a.bin, "rename", "--socket", a.socket, "b", "Kitchen Laptop"); err != nil {
		t.Fatalf("rename: %v %s", err, errOut)
	}
	for _, name := range []string{"kitchen", "kitchen laptop", "KITCHEN L"} {
		if _, stderr, code := a.send(name, "hello", name); code != 0 {
			t.Fatalf("send %q: exit %d: %s", name, code, stderr)
		}
	}
	file := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(file, []byte(strings.Repeat("x", 1500)), 0o644)
	out, errOut, err := a.Run(a.bin, "send", "--socket", a.socket, "kit", "--file", file)
	if err != nil || !strings.Contains(out, "(1.5 KB)") || strings.Contains(out, "Mbit/s") {
		t.Fatalf("send a file by a prefix: %v %q %s", err, out, errOut)
	}
	_, stderr, code := a.send("bob", "hi")
	if code != 1 || !strings.Contains(stderr, `"Kitchen Laptop"`) || strings.Contains(stderr, "network") {
		t.Fatalf("send to an unknown name: exit %d: %s", code, stderr)
	}

	out, _, _ = a.Run(a.bin, "peers", "--socket", a.socket)
	if !strings.Contains(out, "NOW") || !strings.Contains(out, " online ") {
		t.Errorf("peers:\n%s", out)
	}
	out, _, _ = a.Run(a.bin, "status", "--socket", a.socket)
	if !strings.Contains(out, "paired   1, 1 online now") {
		t.Errorf("status:\n%s", out)
	}

	want := filepath.Join(b.state, "inbox", "notes.txt")
	out, _, _ = b.Run(b.bin, "inbox", "--socket", b.socket)
	if !strings.Contains(out, want+" (1.5 KB)") || strings.Count(out, "text") != 3 {
		t.Fatalf("inbox does not show %s (1.5 KB) and 3 texts:\n%s", want, out)
	}
	// The file is the group's to read, and a member who may not enter
	// the state directory copies it out through the daemon; nothing but
	// a received file comes out that way.
	if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("received file mode: %v %v", fi.Mode(), err)
	}
	copyTo := filepath.Join(t.TempDir(), "copy.txt")
	if out, errOut, err := b.Run(b.bin, "inbox", "--get", "notes.txt", "--out", copyTo, "--socket", b.socket); err != nil || !strings.Contains(out, "copied notes.txt (1.5 KB)") {
		t.Fatalf("inbox --get: %v %s %s", err, out, errOut)
	}
	if got, _ := os.ReadFile(copyTo); string(got) != strings.Repeat("x", 1500) {
		t.Errorf("copied %d bytes", len(got))
	}
	if _, errOut, err := b.Run(b.bin, "inbox", "--get", "notes.txt", "--out", copyTo, "--socket", b.socket); err == nil {
		t.Errorf("inbox --get replaced an existing file: %s", errOut)
	}
	for _, bad := range []string{"../paired.json", ".pairing/inbox.jsonl", "nothing.txt"} {
		if out, _, err := b.Run(b.bin, "inbox", "--get", bad, "--out", "-", "--socket", b.socket); exitCode(err) != 1 || out != "" {
			t.Errorf("inbox --get %s: %v %q", bad, err, out)
		}
	}
	if _, errOut, err := b.Run(b.bin, "inbox", "--clear", "--socket", b.socket); exitCode(err) != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("inbox --clear without a terminal or --yes: %v %s", err, errOut)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("the file went without --yes: %v", err)
	}
	// On a terminal it asks; anything but y keeps everything.
	tm := newTerm(t, b, 80, 24, b.bin+" inbox --clear --socket "+b.socket)
	tm.waitFor(t, "delete 1 received files (1.5 KB) and 3 texts? [y/N]")
	tm.keys("n", "Enter")
	tm.waitFor(t, "nothing deleted")
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("the file went on a no: %v", err)
	}
	out, errOut, err = b.Run(b.bin, "inbox", "--clear", "--yes", "--socket", b.socket)
	if err != nil || !strings.Contains(out, "deleted 1 files (1.5 KB) and 3 texts") {
		t.Fatalf("inbox --clear --yes: %v %q %s", err, out, errOut)
	}
	if _, err := os.Stat(want); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", want, err)
	}
	if items := b.inbox(); len(items) != 0 {
		t.Errorf("inbox after clear: %+v", items)
	}
}

// TestLogsOneLinePerConnection: at the default level a WebRTC connection
// is one line (connected, its candidate pair, how long it took), not a
// line per ICE, DTLS and connection state.
func TestLogsOneLinePerConnection(t *testing.T) {
	a, b := pairedPair(t, "--log-level", "info")
	if _, stderr, code := a.send("b", "hello"); code != 0 {
		t.Fatalf("send: exit %d: %s", code, stderr)
	}
	for _, n := range []*node{a, b} {
		log := n.daemon.Stderr()
		if got := strings.Count(log, `msg="webrtc: connected"`); got != 1 || strings.Count(log, "msg=\"webrtc: ice") > 0 || strings.Count(log, "msg=\"webrtc: dtls") > 0 {
			t.Errorf("%s's log at info has %d connected lines, or state changes:\n%s", n.Name, got, log)
		}
	}
}
