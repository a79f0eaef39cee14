package lantest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
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
	a, _ := startAvahiConf(t, h, fmt.Sprintf(`[server]
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
`, h.Name))
	return a
}

// Env is what avahi-browse and avahi-publish need to reach this daemon.
func (a *Avahi) Env() []string { return []string{"DBUS_SYSTEM_BUS_ADDRESS=" + a.Bus} }
