package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/internal/turncred"
	"github.com/lanpairing/pairing/pairing"
)

// TestMain removes the binaries lantest.BuildPairing made (TestUnitFile,
// TestInstallWithoutGo). The command's tests start no namespaces: the
// scenarios that do are in internal/e2e.
func TestMain(m *testing.M) {
	code := m.Run()
	lantest.RemoveBuilds()
	os.Exit(code)
}

// TestUsage checks the CLI's rules: bad usage exits 2 with one line on
// stderr naming the problem; --help prints to stdout and exits 0.
func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"help"}, 0, "  discover ", ""},
		{[]string{"--help"}, 0, "Available Commands:", ""},
		{[]string{"frobnicate"}, 2, "", `pairing: unknown command "frobnicate"`},
		{[]string{"discover", "--help"}, 0, "-t, --timeout duration", ""},
		{[]string{"help", "join"}, 0, "pairing join URL [flags]", ""},
		{[]string{"discover", "--bogus"}, 2, "", "pairing: unknown flag: --bogus"},
		{[]string{"discover", "-z"}, 2, "", "pairing: unknown shorthand flag: 'z' in -z"},
		{[]string{"join"}, 2, "", "pairing: missing argument: join URL"},
		{[]string{"join", "a", "b"}, 2, "", `pairing: unexpected argument "b"`},
		// Flags after the positional argument, as the usage lines show.
		{[]string{"join", "http://192.0.2.1:1/p#v=1", "--json", "--timeout", "1ms", "--socket", "/nonexistent/s", "--state-dir", "/nonexistent/d"}, 1, "", "pairing: "},
		{[]string{"discover", "--timeout", "0s"}, 2, "", "pairing: --timeout must be positive"},
		{[]string{"discover", "extra"}, 2, "", `pairing: unexpected argument "extra"`},
		{[]string{"serve", "--name", strings.Repeat("n", 64)}, 2, "", "pairing: bad --name: name must be 1 to 63 bytes"},
		{[]string{"serve", "--log-format", "xml"}, 2, "", `pairing: bad --log-format: "xml": want text or json`},
		{[]string{"serve", "--pair-window", "-1s"}, 2, "", `pairing: bad --pair-window: "-1s" is not a positive duration`},
		{[]string{"serve", "--config", "/nonexistent/pairing.conf"}, 2, "", "pairing: bad config: open /nonexistent/pairing.conf"},
		{[]string{"turn-credentials", "--user", "alice"}, 2, "", "pairing: --secret is required"},
		{[]string{"status", "--socket", "/nonexistent/pairing.sock"}, 1, "", "pairing: no pairing daemon is running at /nonexistent/pairing.sock; hint: start it"},
	} {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.out) || !strings.Contains(errOut.String(), c.errOut) {
			t.Errorf("pairing %v: exit %d (want %d)\nstdout: %s\nstderr: %s", c.args, code, c.code, out.String(), errOut.String())
		}
	}
}

// TestCompletion: cobra's completion scripts for the three shells, and
// completion of peer names and IDs from the state directory when no
// daemon runs (the daemon's list is used when one does).
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out, errOut bytes.Buffer
		if code := run([]string{"completion", sh}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "pairing") || out.Len() < 500 {
			t.Fatalf("completion %s: exit %d, %d bytes: %s", sh, code, out.Len(), errOut.String())
		}
	}
	dir := t.TempDir()
	store, err := pairing.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := pairing.LoadIdentity(t.TempDir())
	if err := store.Put(pairing.PairedPeer{Fingerprint: id.Fingerprint, Name: "kitchen", Kind: pairing.KindDevice, PairedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	id2, _ := pairing.LoadIdentity(t.TempDir())
	if err := store.Put(pairing.PairedPeer{Fingerprint: id2.Fingerprint, Name: "Anna's phone", Kind: pairing.KindBrowser, PairedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PAIRING_STATE_DIR", dir) // send has no --state-dir: the default
	for _, cmd := range [][]string{{"send", ""}, {"unpair", "kit"}} {
		var out, errOut bytes.Buffer
		args := append([]string{"__complete", cmd[0], "--socket", "/nonexistent/s"}, cmd[1])
		if code := run(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "kitchen\t"+id.ID()) {
			t.Fatalf("completing %v: exit %d:\n%s\n%s", cmd, code, out.String(), errOut.String())
		}
	}
	// Names as send takes them: any case, spaces and all.
	var out, errOut bytes.Buffer
	run([]string{"__complete", "rename", "--socket", "/nonexistent/s", "--state-dir", dir, "anna"}, &out, &errOut)
	if !strings.Contains(out.String(), "Anna's phone\t"+id2.ID()) {
		t.Fatalf("completing a name by a lower-case prefix:\n%s", out.String())
	}
	out.Reset()
	run([]string{"__complete", "send", "kitchen", "--path", ""}, &out, &errOut)
	if !strings.Contains(out.String(), "tls") || !strings.Contains(out.String(), "webrtc") {
		t.Fatalf("completing --path: %s", out.String())
	}
}

func TestTURNCredentials(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"turn-credentials", "--secret", "s3cret", "--user", "alice", "--ttl", "1h", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got struct{ Username, Password string }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	exp, user, _ := strings.Cut(got.Username, ":")
	e, _ := strconv.ParseInt(exp, 10, 64)
	if user != "alice" || time.Until(time.Unix(e, 0)) < 59*time.Minute || time.Until(time.Unix(e, 0)) > time.Hour+time.Minute {
		t.Fatalf("username %q", got.Username)
	}
	// The same algorithm the daemon uses, checked against coturn in
	// TestDiagTURN; here against the formula itself.
	if u, p := turncred.Mint("s3cret", "alice", time.Hour, time.Unix(e, 0).Add(-time.Hour)); u != got.Username || p != got.Password {
		t.Fatalf("password %q, want %q", got.Password, p)
	}
}

// TestProgress: the progress line of send shows the bytes and percentage
// as they go, and is cleared at the end.
func TestProgress(t *testing.T) {
	var out lantest.SyncBuffer
	r, stop := progress(&out, strings.NewReader(strings.Repeat("x", 4<<20)), 4<<20)
	defer stop()
	r.Read(make([]byte, 1<<20))
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(out.String(), "1.0 / 4.2 MB   25%"); {
		if time.Now().After(deadline) {
			t.Fatalf("progress output %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJournalFields: attribute keys become journal field names (the
// ones people filter on by name), and the message keeps the key=value
// text of the plain log.
func TestJournalFields(t *testing.T) {
	for in, want := range map[string]string{"peer": "PEER_ID", "addr": "ADDRESS", "duration_ms": "DURATION_MS", "send-failed": "SEND_FAILED", "9x": "F9X"} {
		if got := journalKey(nil, in); got != want {
			t.Errorf("journalKey(%q) = %q, want %q", in, got, want)
		}
	}
	if got := journalKey([]string{"beacon"}, "peer"); got != "BEACON_PEER" {
		t.Errorf("grouped key %q", got)
	}
	r := slog.NewRecord(time.Now(), slog.LevelWarn, "peer found", 0)
	r.AddAttrs(slog.String("peer", "ABCD"), slog.String("name", "my phone"))
	if got := journalMessage(r, []string{"x=1"}); got != `peer found x=1 peer=ABCD name="my phone"` {
		t.Errorf("message %q", got)
	}
	if _, err := newJournalHandler(slog.LevelInfo); err != nil {
		t.Fatal(err)
	}
}

func TestGoroutineSummary(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	for range 5 {
		go func() { <-stop }()
	}
	s := goroutineSummary(3)
	if !strings.Contains(s, "goroutines; ") || !strings.Contains(s, "× chan receive") || strings.Count(s, ";") > 3 {
		t.Fatalf("summary %q", s)
	}
}

// TestAmbiguousNames: two devices with one name are never picked at
// random: send and unpair refuse and list them; rename makes them
// distinct (here in the state directory; the daemon's endpoint does the
// same).
func TestAmbiguousNames(t *testing.T) {
	dir := t.TempDir()
	store, err := pairing.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 2 {
		id, _ := pairing.LoadIdentity(t.TempDir())
		store.Put(pairing.PairedPeer{Fingerprint: id.Fingerprint, Name: "browser", Kind: pairing.KindBrowser, PairedAt: time.Now()})
		ids = append(ids, id.ID())
	}
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(append(args, "--socket", "/nonexistent/s", "--state-dir", dir), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, _, errOut := cli("unpair", "browser")
	if code != 1 || !strings.Contains(errOut, "more than one paired device matches") || !strings.Contains(errOut, ids[0]) || !strings.Contains(errOut, ids[1]) {
		t.Fatalf("unpair of an ambiguous name: exit %d: %s", code, errOut)
	}
	if code, out, errOut := cli("rename", ids[1], "kitchen tablet"); code != 0 || !strings.Contains(out, "renamed") {
		t.Fatalf("rename: exit %d: %s %s", code, out, errOut)
	}
	if code, _, errOut := cli("rename", ids[1], strings.Repeat("x", 64)); code != 2 {
		t.Fatalf("rename to a bad name: exit %d: %s", code, errOut)
	}
	if code, out, errOut := cli("unpair", "browser"); code != 0 || !strings.Contains(out, ids[0]) {
		t.Fatalf("unpair once the name is unique: exit %d: %s %s", code, out, errOut)
	}
	left, _ := pairing.ReadStore(dir)
	if len(left) != 1 || left[0].Name != "kitchen tablet" {
		t.Fatalf("left: %+v", left)
	}
}

// TestScreen: serve --open's terminal shows the code with the time left
// under it, writes log lines above the code (taking it off and drawing
// it again, so the logs never push it off the screen), and when the
// window closes takes the code off and says why.
func TestScreen(t *testing.T) {
	var out bytes.Buffer
	s := newScreen(&out, 80, 24, true)
	now := time.Now()
	s.now = func() time.Time { return now }
	w := control.Window{QRURL: "http://10.1.0.1:1/p#v=1&fp=" + strings.Repeat("A", 43) + "&s=" + strings.Repeat("b", 22), Name: "box", SecretExpires: now.Add(9*time.Minute + 58*time.Second)}
	s.window(w, true)
	lines := strings.Count(out.String(), "\n")
	if !strings.Contains(out.String(), "closes in 9:58") || !strings.Contains(out.String(), "Scan it with your phone's") || lines > termRows-1 {
		t.Fatalf("shown (%d lines):\n%s", lines, out.String())
	}
	// The URL (94 characters) is above the code, 2 rows of 80: the code's
	// 21, the URL's and the status line fill the 24.
	if !strings.Contains(out.String(), w.QRURL+"\n") || s.up != lines+1 || s.up+1 != termRows {
		t.Fatalf("the URL is not above the code, or the rows are miscounted (%d): %q", s.up, out.String()[:200])
	}
	lines = s.up
	s.window(control.Window{}, false)
	if !strings.Contains(out.String(), fmt.Sprintf("\x1b[%dA\x1b[J", lines)) || !strings.Contains(out.String(), "pairing window closed ('pairing qr' for a new one)") {
		t.Fatalf("closed: %q", out.String()[len(out.String())-120:])
	}
	out.Reset()
	s.window(w, true)
	out.Reset()
	fmt.Fprintf(s, "time=… level=INFO msg=\"peer found\"\n")
	if got := out.String(); !strings.HasPrefix(got, fmt.Sprintf("\r\x1b[K\x1b[%dA\x1b[Jtime=… level=INFO msg=\"peer found\"\n", lines)) || !strings.HasSuffix(got, "closes in 9:58, or once a device paired") {
		t.Fatalf("a log line does not go above the code: %q", got)
	}
	s.window(control.Window{PreviousClosed: "too many wrong attempts"}, false)
	if !strings.Contains(out.String(), "pairing window closed: too many wrong attempts") {
		t.Fatalf("closed early: %q", out.String()[len(out.String())-150:])
	}
}
