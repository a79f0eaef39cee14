package lantest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Avahi is an avahi-daemon running in a host, with a D-Bus system bus of
// its own, for tests that need a real mDNS peer.
type Avahi struct {
	h   *Host
	Bus string // DBUS_SYSTEM_BUS_ADDRESS for avahi-browse and avahi-publish
}

// RequireAvahi skips t unless avahi-daemon, avahi-utils and dbus are
// installed; with CI=true it fails instead.
func RequireAvahi(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"avahi-daemon", "avahi-browse", "avahi-publish", "dbus-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("needs %s (apt-get install avahi-daemon avahi-utils dbus; 'make test' does it)", tool)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// StartAvahi starts dbus-daemon and avahi-daemon (on the host's eth0) with
// a private /run, so it never meets the machine's own, and waits until
// avahi is up.
func (h *Host) StartAvahi(t testing.TB) *Avahi {
	t.Helper()
	dir, err := os.MkdirTemp("", "avahi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "bus.sock")
	bus := "unix:path=" + sock
	h.Start("dbus-daemon", "--system", "--nofork", "--nopidfile", "--address="+bus)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dbus-daemon did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	conf := filepath.Join(dir, "avahi-daemon.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[server]
host-name=avahi-%s
allow-interfaces=eth0
use-ipv4=yes
use-ipv6=yes
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-workstation=no
publish-hinfo=no
[reflector]
enable-reflector=no
`, h.Name)), 0o644)
	old := h.Env
	h.Env = append(append([]string(nil), old...), "DBUS_SYSTEM_BUS_ADDRESS="+bus)
	p := h.Start("sh", "-c", "mount -t tmpfs tmpfs /run && exec avahi-daemon --debug --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "+conf)
	h.Env = old
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Stderr(), "Server startup complete"); {
		select {
		case <-p.Done():
			t.Fatalf("avahi-daemon exited:\n%s", p.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("avahi-daemon not ready:\n%s", p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &Avahi{h: h, Bus: bus}
}

// Env is what avahi-browse and avahi-publish need to reach this daemon.
func (a *Avahi) Env() []string { return []string{"DBUS_SYSTEM_BUS_ADDRESS=" + a.Bus} }
