package lantest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real systemd as PID 1 in a container: a Debian rootfs from debootstrap, booted by
// systemd-nspawn without a host systemd (cgroups made by hand,
// --register=no --keep-unit), its veth's outer end in a Host of a LAN.

// rootfsCache keeps a finished debootstrap between runs; rootfsPackages
// is part of its name, so a changed list builds a new one.
const (
	rootfsCache    = "/var/cache/pairing-test"
	rootfsPackages = "systemd,systemd-sysv,dbus,iproute2,adduser,procps,make"
	rootfsSuite    = "bookworm"
)

// RequireContainer skips t (fails with CI=true) unless systemd-nspawn
// and debootstrap are there.
func RequireContainer(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, tool := range []string{"systemd-nspawn", "debootstrap", "script", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			why := fmt.Sprintf("needs %s (apt-get install systemd-container debootstrap; 'make test' does it)", tool)
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s; CI=true: integration tests must run, not skip", why)
			}
			t.Skip(why)
		}
	}
}

// mirror is the Debian mirror apt already uses.
func mirror() string {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 2 && f[0] == "URIs:" && !strings.Contains(f[1], "security"):
				return f[1]
			case len(f) >= 3 && f[0] == "deb" && !strings.Contains(f[1], "security"):
				return f[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// Rootfs returns a fresh copy of a minimal Debian with systemd, built by
// debootstrap once and cached (a build is only cached whole: it is made
// in a temporary directory and renamed).
func Rootfs(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer(",", "-").Replace(rootfsSuite + "-" + rootfsPackages)
	cached := filepath.Join(rootfsCache, name)
	if _, err := os.Stat(filepath.Join(cached, "usr/lib/systemd/systemd")); err != nil {
		os.MkdirAll(rootfsCache, 0o755)
		tmp := cached + ".tmp"
		os.RemoveAll(tmp)
		start := time.Now()
		out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+rootfsPackages, rootfsSuite, tmp, mirror()).CombinedOutput()
		if err != nil {
			os.RemoveAll(tmp)
			t.Fatalf("debootstrap: %v\n%s", err, tail(out, 2000))
		}
		if err := os.Rename(tmp, cached); err != nil {
			t.Fatal(err)
		}
		t.Logf("debootstrap took %s", time.Since(start).Round(time.Second))
	}
	dir := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", "--reflink=auto", cached, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v %s", err, out)
	}
	return dir
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Container is a booted systemd container.
type Container struct {
	t      testing.TB
	Name   string
	Root   string
	Leader int // the container's systemd
	// Iface is the veth's outer end, in the host namespace.
	Iface string
	proc  *exec.Cmd
	out   SyncBuffer
	cg    []string
}

// Boot boots root with systemd as PID 1, its network a veth whose outer
// end lands in h. Stopped in t.Cleanup.
func Boot(t testing.TB, h *Host, root string) *Container {
	t.Helper()
	c := &Container{t: t, Root: root}
	c.Name = "pt" + strconv.Itoa(os.Getpid()%10000) + strconv.Itoa(int(time.Now().UnixNano()%1000))
	c.Iface = "ve-" + c.Name
	if len(c.Iface) > 15 {
		c.Iface = c.Iface[:15]
	}
	for _, hier := range []string{"systemd", "unified"} {
		dir := filepath.Join("/sys/fs/cgroup", hier, c.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("cgroup %s: %v", dir, err)
		}
		c.cg = append(c.cg, dir)
	}
	inner := fmt.Sprintf("nsenter --net=/run/netns/%s systemd-nspawn -q -D %s -M %s --register=no --keep-unit --network-veth -b", h.NS, root, c.Name)
	script := fmt.Sprintf("echo $$ > %s/cgroup.procs && echo $$ > %s/cgroup.procs && exec script -qfc %q /dev/null",
		c.cg[0], c.cg[1], inner)
	c.proc = exec.Command("sh", "-c", script)
	c.proc.Stdout, c.proc.Stderr = &c.out, &c.out
	c.proc.Stdin = nil
	if err := c.proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	Eventually(t, 60*time.Second, func() error {
		c.Leader = c.findLeader()
		if c.Leader == 0 {
			return fmt.Errorf("no systemd in the container yet:\n%s", tail([]byte(c.out.String()), 1500))
		}
		out, _, _ := c.Exec("systemctl", "is-system-running")
		if s := strings.TrimSpace(out); s != "running" && s != "degraded" {
			return fmt.Errorf("system is %q", s)
		}
		return nil
	})
	return c
}

// findLeader is the container's PID 1: the systemd whose parent is our
// systemd-nspawn.
func (c *Container) findLeader() int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	nspawn := map[string]bool{}
	type proc struct{ pid, ppid, comm string }
	var all []proc
	for _, p := range procs {
		b, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+2:])
		x := proc{filepath.Base(p), f[1], s[open+1 : close]}
		all = append(all, x)
		if x.comm == "systemd-nspawn" {
			if cmd, _ := os.ReadFile(p + "/cmdline"); bytes.Contains(cmd, []byte(c.Name)) {
				nspawn[x.pid] = true
			}
		}
	}
	for _, x := range all {
		if nspawn[x.ppid] && x.comm == "systemd" {
			pid, _ := strconv.Atoi(x.pid)
			return pid
		}
	}
	return 0
}

// Exec runs a command inside the container (all its namespaces), at most
// 60 s.
func (c *Container) Exec(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(c.Leader), "-a", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// Must is Exec that fails the test on an error.
func (c *Container) Must(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.Exec(args...)
	if err != nil {
		c.t.Fatalf("in the container: %v: %v\n%s%s", args, err, out, errOut)
	}
	return out
}

// Console is what the container wrote on its console.
func (c *Container) Console() string { return c.out.String() }

func (c *Container) stop() {
	if c.Leader != 0 {
		c.Exec("systemctl", "poweroff", "--no-block")
	}
	done := make(chan struct{})
	go func() { c.proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.proc.Process.Kill()
		exec.Command("pkill", "-KILL", "-f", "-M "+c.Name).Run()
		<-done
	}
	for i := len(c.cg) - 1; i >= 0; i-- {
		// Sub-cgroups the container's systemd made go first.
		exec.Command("sh", "-c", fmt.Sprintf("find %s -depth -type d -exec rmdir {} + 2>/dev/null", c.cg[i])).Run()
	}
	os.RemoveAll("/run/systemd/nspawn/unix-export/" + c.Name)
}
