package lantest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Router makes host h forward IPv4 and IPv6 between its interfaces, as
// the router between a home's subnets (or VLANs) does. (A function, not a
// method: Host has methods enough.)
func Router(h *Host) {
	h.l.t.Helper()
	sysctl(h, "net/ipv4/ip_forward", "1")
	sysctl(h, "net/ipv6/conf/all/forwarding", "1")
}

// StartReflector starts avahi-daemon in host h as an mDNS reflector
// between ifaces (avahi's `[reflector] enable-reflector=yes`, what home
// routers run between VLANs): it repeats queries and answers from each
// interface on the others, and relays legacy unicast queries by the
// query ID. Like StartAvahi, with a D-Bus bus and /run of its own; it
// publishes nothing of its own.
func StartReflector(t testing.TB, h *Host, ifaces ...string) *Reflector {
	t.Helper()
	conf := fmt.Sprintf(`[server]
host-name=reflector-%s
allow-interfaces=%s
use-ipv4=yes
use-ipv6=yes
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
publish-workstation=no
publish-hinfo=no
[reflector]
enable-reflector=yes
reflect-ipv=no
`, h.Name, strings.Join(ifaces, ","))
	a, p := startAvahiConf(t, h, conf)
	return &Reflector{Avahi: a, Proc: p}
}

// Reflector is an avahi-daemon reflecting mDNS; Proc's stderr is its
// debug log.
type Reflector struct {
	*Avahi
	Proc *Proc
}

// startAvahiConf starts dbus-daemon and avahi-daemon in h with the
// config conf and waits until avahi is up.
func startAvahiConf(t testing.TB, h *Host, conf string) (*Avahi, *Proc) {
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
	path := filepath.Join(dir, "avahi-daemon.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	old := h.Env
	h.Env = append(append([]string(nil), old...), "DBUS_SYSTEM_BUS_ADDRESS="+bus)
	p := h.Start("sh", "-c", "mount -t tmpfs tmpfs /run && exec avahi-daemon --debug --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "+path)
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
	return &Avahi{h: h, Bus: bus}, p
}
