package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
)

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
	lantest.Eventually(t, 10*time.Second, seesName("first"))

	os.WriteFile(conf, []byte("# renamed\nname = second\npair-window = 2m\n"), 0o644)
	a.daemon.Signal(syscall.SIGHUP)
	lantest.Eventually(t, 5*time.Second, seesName("second"))

	// A broken config on SIGHUP keeps the running settings.
	os.WriteFile(conf, []byte("name = third\nbogus = 1\n"), 0o644)
	a.daemon.Signal(syscall.SIGHUP)
	lantest.Eventually(t, 5*time.Second, func() error {
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
