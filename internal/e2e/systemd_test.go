package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
)

// TestSystemdService boots a real systemd as PID 1 in a container
// (systemd-nspawn on a cached debootstrap rootfs), installs the daemon
// with `make install DESTDIR=<rootfs>`, and checks what an administrator
// relies on: start, READY=1 and STATUS=, the journal's priorities and
// fields and no secret in it, who may use the control socket, reload,
// restart, the watchdog, stop, the live security score, and a second
// daemon on the LAN pairing with the service.
func TestSystemdService(t *testing.T) {
	lantest.RequireContainer(t)
	t.Parallel()
	bin := rootBin(t)
	l := lantest.New(t)
	h := l.Host("h")
	root := lantest.Rootfs(t)
	if out, err := exec.Command("make", "-C", "../..", "install", "DESTDIR="+root).CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	// A shorter watchdog than the unit's 30 s, so the test waits less.
	dropIn := filepath.Join(root, "etc/systemd/system/pairing.service.d")
	mustWrite(t, filepath.Join(dropIn, "test.conf"), "[Service]\nWatchdogSec=4s\n")
	c := lantest.Boot(t, h, root)
	h.Must("ip", "addr", "add", "10.77.0.1/24", "dev", c.Iface)
	h.Must("ip", "link", "set", c.Iface, "up")
	c.Must("ip", "addr", "add", "10.77.0.2/24", "dev", "host0")
	c.Must("ip", "link", "set", "host0", "up")
	journal := func() []map[string]any {
		out := c.Must("journalctl", "-u", "pairing", "-o", "json", "--no-pager")
		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil {
				lines = append(lines, m)
			}
		}
		return lines
	}
	show := func(prop string) string {
		return strings.TrimSpace(c.Must("systemctl", "show", "pairing", "-p", prop, "--value"))
	}
	active := func() {
		t.Helper()
		lantest.Eventually(t, 15*time.Second, func() error {
			if s := show("ActiveState"); s != "active" {
				return fmt.Errorf("pairing is %s: %s", s, c.Must("journalctl", "-u", "pairing", "-n", "20", "--no-pager"))
			}
			return nil
		})
	}
	status := func(as ...string) control.Status {
		t.Helper()
		var st control.Status
		args := append(as, "pairing", "status", "--json")
		if err := json.Unmarshal([]byte(c.Must(args...)), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	// 1. enable --now with a dynamic user: active (so READY=1 came: the
	// unit is Type=notify), and STATUS= says where it listens.
	c.Must("systemctl", "daemon-reload")
	c.Must("systemctl", "enable", "--now", "pairing")
	active()
	lantest.Eventually(t, 10*time.Second, func() error {
		if s := show("StatusText"); !strings.Contains(s, "10.77.0.2:") {
			return fmt.Errorf("STATUS= %q", s)
		}
		return nil
	})
	c.Must("systemctl", "stop", "pairing")
	// Then a static user and group pairing, with alice in the group and
	// bob not: the switch keeps the state, /etc/pairing stays root's.
	c.Must("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pairing")
	c.Must("useradd", "-m", "-G", "pairing", "alice")
	c.Must("useradd", "-m", "bob")
	c.Must("systemctl", "start", "pairing")
	active()
	if owner := strings.TrimSpace(c.Must("stat", "-c", "%U:%G", "/etc/pairing")); owner != "root:root" {
		t.Errorf("/etc/pairing is owned by %s after the switch to a static user", owner)
	}
	st := status()
	port := st.Port

	// 2. Who may use the control socket: root, a member of group
	// pairing, and not anyone else.
	if out, _, _ := c.Exec("pairing", "diag", "--json"); !strings.Contains(out, `"steps"`) {
		t.Errorf("diag as root: %s", out)
	}
	status("runuser", "-u", "alice", "--")
	c.Must("runuser", "-u", "alice", "--", "pairing", "qr", "--json")
	if out, _, _ := c.Exec("runuser", "-u", "alice", "--", "pairing", "diag", "--json"); !strings.Contains(out, `"steps"`) {
		t.Errorf("diag as a member of group pairing: %s", out)
	}
	_, errOut, err := c.Exec("runuser", "-u", "bob", "--", "pairing", "status")
	if exitCode(err) != 1 || !strings.Contains(errOut, "a daemon runs at /run/pairing/pairing.sock") || !strings.Contains(errOut, "group pairing") {
		t.Errorf("a non-member's status: exit %d: %s", exitCode(err), errOut)
	}

	// 3. A second daemon on the LAN finds the service and pairs with it.
	n := newNode(t, h, bin)
	n.serve()
	lantest.Eventually(t, 10*time.Second, func() error {
		if d, _, _ := n.discover("--timeout", "500ms"); peerNamed(d.Peers, st.Name) == nil {
			return fmt.Errorf("h's discover does not find %q: %+v", st.Name, d.Peers)
		}
		return nil
	})
	var w control.Window
	json.Unmarshal([]byte(c.Must("pairing", "qr", "--json")), &w)
	secret := ""
	if u, err := url.Parse(w.URL); err == nil {
		q, _ := url.ParseQuery(u.Fragment)
		secret = q.Get("s")
	}
	if _, stderr, code := n.join(w.URL); code != 0 {
		t.Fatalf("join from the LAN: %s", stderr)
	}
	if !strings.Contains(c.Must("pairing", "peers"), "h") {
		t.Errorf("the service does not list h: %s", c.Must("pairing", "peers"))
	}

	// 4. reload applies a new name without a restart.
	pid := show("MainPID")
	mustWrite(t, filepath.Join(root, "etc/pairing/pairing.conf"), "name = renamed\n")
	c.Must("systemctl", "reload", "pairing")
	lantest.Eventually(t, 5*time.Second, func() error {
		if got := status().Name; got != "renamed" {
			return fmt.Errorf("name %q after reload", got)
		}
		return nil
	})
	if show("MainPID") != pid {
		t.Errorf("reload restarted the daemon")
	}
	// A bad config on reload: an error in the journal, the old settings kept.
	mustWrite(t, filepath.Join(root, "etc/pairing/pairing.conf"), "name = renamed\nbogus key\n")
	c.Must("systemctl", "reload", "pairing")
	lantest.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(c.Must("journalctl", "-u", "pairing", "-p", "err", "--no-pager"), "config reload failed") {
			return fmt.Errorf("no error-priority line for the bad reload")
		}
		return nil
	})
	mustWrite(t, filepath.Join(root, "etc/pairing/pairing.conf"), "name = renamed\n")

	// 5. The journal: real priorities, fields to filter on, no secret.
	lines := journal()
	prio := map[string]int{}
	var peerField, readyInfo bool
	for _, m := range lines {
		p, _ := m["PRIORITY"].(string)
		prio[p]++
		msg, _ := m["MESSAGE"].(string)
		if strings.HasPrefix(msg, "ready") && p == "6" && m["DEVICE_ID"] == st.ID {
			readyInfo = true
		}
		if strings.HasPrefix(msg, "paired") && m["PEER_ID"] != nil {
			peerField = true
		}
		if secret != "" && strings.Contains(fmt.Sprint(m), secret) {
			t.Errorf("the pairing secret is in the journal: %v", m)
		}
	}
	if !readyInfo || !peerField || prio["3"] == 0 || prio["6"] == 0 {
		t.Errorf("journal: ready at info with DEVICE_ID %v, paired with PEER_ID %v, priorities %v", readyInfo, peerField, prio)
	}
	if out := c.Must("journalctl", "-u", "pairing", "PEER_ID="+n.id(t), "--no-pager", "-q"); !strings.Contains(out, "paired") {
		t.Errorf("journalctl PEER_ID=… finds nothing: %q", out)
	}

	// 6. restart keeps identity, paired devices and the port.
	c.Must("systemctl", "restart", "pairing")
	active()
	after := status()
	if after.ID != st.ID || after.Port != port || after.Paired != 1 {
		t.Errorf("after restart: id %s port %d paired %d; before: %s %d 1", after.ID, after.Port, after.Paired, st.ID, port)
	}

	// 7. A stopped daemon is restarted by the watchdog, and its abort
	// does not flood the journal with every goroutine.
	restarts, _ := strconv.Atoi(show("NRestarts"))
	c.Must("sh", "-c", "kill -STOP $(systemctl show pairing -p MainPID --value)")
	lantest.Eventually(t, 20*time.Second, func() error {
		if n, _ := strconv.Atoi(show("NRestarts")); n <= restarts || show("ActiveState") != "active" {
			return fmt.Errorf("not restarted yet (%d restarts, %s)", n, show("ActiveState"))
		}
		return nil
	})
	dump, _, _ := c.Exec("journalctl", "-u", "pairing", "--no-pager", "-q", "-g", "^goroutine ")
	if n := strings.Count(dump, "\n"); n > 0 {
		t.Errorf("the watchdog's abort printed %d goroutines:\n%s", n, dump)
	}
	if out := c.Must("journalctl", "-u", "pairing", "--no-pager", "-q", "-p", "err"); !strings.Contains(out, "aborted (by the watchdog?)") {
		t.Errorf("no one-line summary of the abort:\n%s", out)
	}

	// 8. The live security score.
	sec, _, _ := c.Exec("systemd-analyze", "security", "pairing.service", "--no-pager")
	var score float64
	for _, line := range strings.Split(sec, "\n") {
		if i := strings.Index(line, "Overall exposure level for pairing.service:"); i >= 0 {
			fmt.Sscanf(strings.TrimSpace(line[i+len("Overall exposure level for pairing.service:"):]), "%g", &score)
		}
	}
	if score == 0 || score > 2.0 {
		t.Errorf("systemd-analyze security: %.1f (want ≤ 2.0)\n%s", score, sec)
	}
	t.Logf("security exposure %.1f", score)

	// 9. stop is clean and quick.
	start := time.Now()
	c.Must("systemctl", "stop", "pairing")
	if took := time.Since(start); took > time.Second {
		t.Errorf("stop took %s", took)
	}
	if r := show("Result"); r != "success" {
		t.Errorf("stop result %q", r)
	}
}

// id is the device ID of n's identity.
func (n *node) id(t *testing.T) string {
	st, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	return st.ID
}

func mustWrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
