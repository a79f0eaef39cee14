package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lan"
)

// TestUnitFile checks the shipped unit with systemd's own tools: verify
// is clean and the sandbox's exposure is at most 2.0.
func TestUnitFile(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze missing (apt-get install systemd; 'make test' does it)")
		}
		t.Skip("needs systemd-analyze")
	}
	unit, err := os.ReadFile("systemd/pairing.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart exists: point it at a built binary.
	bin := lan.BuildPairing(t, false)
	path := filepath.Join(t.TempDir(), "pairing.service")
	os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/pairing"), []byte(bin)), 0o644)
	// --man=no: the pages of Documentation= are installed with the unit
	// (TestManPages checks them), not on this machine.
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, _ = exec.Command("systemd-analyze", "security", "--offline=true", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for pairing.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", score)
	if score > 2.0 {
		t.Fatalf("exposure %.1f > 2.0:\n%s", score, out)
	}
	for _, want := range []string{"Type=notify", "StateDirectory=pairing", "RuntimeDirectory=pairing", "DynamicUser=yes", "Restart=on-failure", "WatchdogSec=", "CapabilityBoundingSet=\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}

// TestSystemdNotify runs the daemon with a fake NOTIFY_SOCKET.
func TestSystemdNotify(t *testing.T) {
	l, bin := lanWith(t)
	h := l.Host("a")
	h.Attach(l.Segment(), "10.1.0.1/24")
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h.Env = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}
	n := newNode(t, h, bin)
	n.daemon = n.Start(bin, "serve", "--state-dir", n.state, "--socket", n.socket, "--name", "a")
	read := func(within time.Duration) []string {
		var msgs []string
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(within))
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return msgs
			}
			msgs = append(msgs, string(buf[:k]))
		}
	}
	msgs := read(2 * time.Second)
	if len(msgs) == 0 || !strings.HasPrefix(msgs[0], "READY=1\nSTATUS=10.1.0.1:") {
		t.Fatalf("first notification %q, want READY=1 with the confirmed address in STATUS", msgs)
	}
	if !strings.Contains(msgs[0], "window closed") {
		t.Errorf("STATUS lacks the window state: %q", msgs[0])
	}
	pings := 0
	for _, m := range msgs {
		if m == "WATCHDOG=1" {
			pings++
		}
	}
	if pings < 5 { // ~10 expected at 100 ms over 2 s
		t.Fatalf("%d watchdog pings in 2 s with WATCHDOG_USEC=200000: %q", pings, msgs)
	}
	if err := n.daemon.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if rest := read(500 * time.Millisecond); !contains(rest, "STOPPING=1") {
		t.Fatalf("no STOPPING=1 after SIGTERM: %q", rest)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestSighupReloadsConfig(t *testing.T) {
	l, bin := lanWith(t)
	seg := l.Segment()
	ha, hb := l.Host("a"), l.Host("b")
	ha.Attach(seg, "10.1.0.1/24")
	hb.Attach(seg, "10.1.0.2/24")
	a, b := newNode(t, ha, bin), newNode(t, hb, bin)
	conf := filepath.Join(t.TempDir(), "pairing.conf")
	os.WriteFile(conf, []byte("name = first\n"), 0o644)
	a.daemon = a.Start(bin, "serve", "--config", conf, "--state-dir", a.state, "--socket", a.socket)
	seesName := func(want string) func() error {
		return func() error {
			res, _, _ := b.discover("--timeout", "500ms")
			if len(res.Peers) != 1 || res.Peers[0].Name != want {
				return errorf("b sees %+v, want one device named %q", res.Peers, want)
			}
			return nil
		}
	}
	lan.Eventually(t, 10*time.Second, seesName("first"))

	os.WriteFile(conf, []byte("# renamed\nname = second\npair-window = 2m\n"), 0o644)
	a.daemon.Signal(syscall.SIGHUP)
	lan.Eventually(t, 5*time.Second, seesName("second"))

	// A broken config on SIGHUP keeps the running settings.
	os.WriteFile(conf, []byte("name = third\nbogus = 1\n"), 0o644)
	a.daemon.Signal(syscall.SIGHUP)
	lan.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(a.daemon.Stderr(), "config reload failed") || !strings.Contains(a.daemon.Stderr(), "pairing.conf:2: bogus: unknown key") {
			return errorf("no reload error in the log")
		}
		return nil
	})
	if err := seesName("second")(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.daemon.Done():
		t.Fatalf("daemon exited on a bad config:\n%s", a.daemon.Stderr())
	default:
	}
}

func TestBadConfigExits2(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"name = ok\nbogus = 1\n":      ":2: bogus: unknown key",
		"pair-window = soon\n":        ":1: pair-window: \"soon\" is not a positive duration",
		"mdns = perhaps\n":            ":1: mdns:",
		"listen = nowhere\n":          ":1: listen:",
		"turn = http://example.net\n": ":1: turn:",
		"name\n":                      ":1: want key = value",
	} {
		path := filepath.Join(dir, "bad.conf")
		os.WriteFile(path, []byte(content), 0o644)
		var out, errOut bytes.Buffer
		code := run([]string{"serve", "--config", path, "--state-dir", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "s.sock")}, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), path+want) {
			t.Errorf("config %q: exit %d, stderr %q; want exit 2 naming %q", content, code, errOut.String(), want)
		}
		if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
			t.Fatalf("config %q: the daemon started (state dir created) before failing", content)
		}
	}
}
