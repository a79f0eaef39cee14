package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lan"
	"github.com/lanpairing/pairing/internal/turncred"
)

// TestUsage checks the CLI's rules: bad usage exits 2 with one line on
// stderr naming the problem; --help prints to stdout and exits 0.
func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"help"}, 0, "pairing discover", ""},
		{[]string{"frobnicate"}, 2, "", `pairing: unknown command "frobnicate"`},
		{[]string{"discover", "--help"}, 0, "--timeout", ""},
		{[]string{"discover", "--bogus"}, 2, "", "pairing: flag provided but not defined: -bogus"},
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
	var out lan.SyncBuffer
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
