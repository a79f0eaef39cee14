// Package lan builds simulated LANs for tests: hosts are network
// namespaces, wired by veth pairs to Linux bridges that live in a switch
// namespace of their own (so the host's br_netfilter never filters them).
// Everything is named uniquely per LAN and removed in t.Cleanup.
package lan

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips t unless it runs as root with ip and nft present. With
// CI=true it fails instead: CI must run the namespace tests.
func RequireRoot(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	} else {
		for _, tool := range []string{"ip", "nft"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = fmt.Sprintf("needs %s (apt-get install iproute2 nftables; 'make test' does it)", tool)
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true: integration tests must run, not skip", why)
	}
	t.Skip(why)
}

// LAN is one simulated network: a switch namespace and hosts.
type LAN struct {
	t      testing.TB
	prefix string
	sw     string
	nseg   int

	mu    sync.Mutex
	hosts []*Host
	procs []*Proc
}

// New creates an empty LAN; RequireRoot first.
func New(t testing.TB) *LAN {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	l := &LAN{t: t, prefix: "pt" + hex.EncodeToString(b[:])}
	l.sw = l.prefix + "-sw"
	l.must("ip", "netns", "add", l.sw)
	t.Cleanup(l.teardown)
	l.must("ip", "-n", l.sw, "link", "set", "lo", "up")
	return l
}

func (l *LAN) teardown() {
	l.mu.Lock()
	procs, hosts := l.procs, l.hosts
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for _, h := range hosts {
		exec.Command("ip", "netns", "del", h.NS).Run()
	}
	exec.Command("ip", "netns", "del", l.sw).Run()
}

func (l *LAN) must(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ReserveNeighbours makes room in the kernel's neighbour tables (ARP and
// NDP) for a LAN of hosts that all talk to each other. The tables are
// shared by every network namespace on the machine and hold 1,024
// entries by default (gc_thresh3); 60 namespaces that each resolve 59
// others need over 3,500 per family. When a table is full, the kernel
// drops what it cannot make an entry for (IPv4 silently, IPv6 with
// EINVAL; "neighbor table overflow" in dmesg), and the hosts that came
// last cannot send at all until old entries age out, 5 to 30 s later: a
// limit of one kernel standing in for many machines, not of the daemon.
// The old values come back when the test ends.
func (l *LAN) ReserveNeighbours(hosts int) {
	l.t.Helper()
	need := hosts*hosts + 1024
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, key := range []string{"gc_thresh2", "gc_thresh3"} {
			path := "/proc/sys/net/" + fam + "/neigh/default/" + key
			b, err := os.ReadFile(path)
			if err != nil {
				l.t.Fatalf("neighbour table: %v", err)
			}
			old := strings.TrimSpace(string(b))
			if n, err := strconv.Atoi(old); err == nil && n >= need {
				continue
			}
			if err := os.WriteFile(path, []byte(strconv.Itoa(need)), 0o644); err != nil {
				l.t.Fatalf("neighbour table: %v", err)
			}
			l.t.Cleanup(func() { os.WriteFile(path, []byte(old), 0o644) })
		}
	}
}

// Segment is one broadcast domain: a bridge in the switch namespace.
type Segment struct {
	l        *LAN
	Name     string
	ports    []string
	filtered bool
}

// Segment adds a bridge. Multicast snooping is off, so multicast floods
// like on a plain switch (no IGMP querier needed).
func (l *LAN) Segment() *Segment {
	l.t.Helper()
	l.nseg++
	s := &Segment{l: l, Name: fmt.Sprintf("br%d", l.nseg)}
	l.must("ip", "-n", l.sw, "link", "add", s.Name, "type", "bridge", "mcast_snooping", "0")
	l.must("ip", "-n", l.sw, "link", "set", s.Name, "up")
	return s
}

// FilterMulticast makes the segment drop multicast UDP while unicast
// passes, like AP/client isolation or an IGMP-snooping switch without a
// querier. ICMPv6 stays, so neighbour discovery works. Like every filter
// here it covers ports attached before and after the call.
func (s *Segment) FilterMulticast() {
	s.filter("ip daddr 224.0.0.0/4 drop", "ip6 daddr ff00::/8 meta l4proto udp drop")
}

// DropUDP makes the segment drop UDP to port (IPv4 and IPv6), e.g. the
// beacon port or mDNS, as a filtering switch or AP would.
func (s *Segment) DropUDP(port int) {
	s.filter(fmt.Sprintf("udp dport %d drop", port))
}

// filter adds rules, matched on traffic entering the bridge from the
// segment's ports (an nft set, since this kernel has no bridge meta).
func (s *Segment) filter(rules ...string) {
	s.l.t.Helper()
	if !s.filtered {
		s.filtered = true
		s.l.nft(s.l.sw, fmt.Sprintf(`table bridge %s {
	set ports { type ifname; }
	chain forward_filter { type filter hook forward priority 0; policy accept; }
}`, s.table()))
		for _, p := range s.ports {
			s.addFilteredPort(p)
		}
	}
	for _, r := range rules {
		s.l.nft(s.l.sw, fmt.Sprintf("add rule bridge %s forward_filter iifname @ports %s\n", s.table(), r))
	}
}

func (s *Segment) table() string { return "filter_" + s.Name }

func (s *Segment) addFilteredPort(port string) {
	s.l.nft(s.l.sw, fmt.Sprintf("add element bridge %s ports { %q }\n", s.table(), port))
}

func (l *LAN) nft(ns, script string) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v\n%s\n%s", ns, err, out, script)
	}
}

// Host is one machine: a network namespace with lo up and IPv6 duplicate
// address detection off (link-local addresses usable at once).
type Host struct {
	l    *LAN
	Name string
	NS   string
	// Env is added to the environment of every command run in the host.
	Env []string
	nif int
}

// Host adds a host; name must be short (it goes into interface names).
func (l *LAN) Host(name string) *Host {
	l.t.Helper()
	h := &Host{l: l, Name: name, NS: l.prefix + "-" + name}
	l.must("ip", "netns", "add", h.NS)
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	l.must("ip", "-n", h.NS, "link", "set", "lo", "up")
	sysctl(h, "net/ipv6/conf/all/accept_dad", "0")
	sysctl(h, "net/ipv6/conf/default/accept_dad", "0")
	return h
}

func sysctl(h *Host, key, val string) {
	h.l.t.Helper()
	h.l.must("ip", "netns", "exec", h.NS, "sh", "-c", fmt.Sprintf("echo %s > /proc/sys/%s", val, key))
}

// Link is a host's interface and its port on the switch.
type Link struct {
	h    *Host
	Name string // in the host, e.g. eth0
	Port string // in the switch namespace
}

// Attach wires the host to seg with a new interface ethN carrying the
// given addresses (CIDR form), and brings it up.
func (h *Host) Attach(seg *Segment, cidrs ...string) *Link {
	h.l.t.Helper()
	return h.AttachNamed(seg, fmt.Sprintf("eth%d", h.nif), cidrs...)
}

// AttachNamed is Attach with the host's interface named name (a name a
// VPN, a bridge or anything else would have).
func (h *Host) AttachNamed(seg *Segment, name string, cidrs ...string) *Link {
	h.l.t.Helper()
	lk := &Link{h: h, Name: name, Port: fmt.Sprintf("%s-e%d", h.Name, h.nif)}
	h.nif++
	l := h.l
	l.must("ip", "link", "add", lk.Name, "netns", h.NS, "type", "veth", "peer", "name", lk.Port, "netns", l.sw)
	l.must("ip", "-n", l.sw, "link", "set", lk.Port, "master", seg.Name)
	l.must("ip", "-n", l.sw, "link", "set", lk.Port, "up")
	seg.ports = append(seg.ports, lk.Port)
	if seg.filtered {
		seg.addFilteredPort(lk.Port)
	}
	for _, c := range cidrs {
		l.must("ip", "-n", h.NS, "addr", "add", c, "dev", lk.Name)
	}
	l.must("ip", "-n", h.NS, "link", "set", lk.Name, "up")
	return lk
}

// Down takes the host's interface down.
func (lk *Link) Down() { lk.h.l.must("ip", "-n", lk.h.NS, "link", "set", lk.Name, "down") }

// Up brings the host's interface up.
func (lk *Link) Up() { lk.h.l.must("ip", "-n", lk.h.NS, "link", "set", lk.Name, "up") }

// NoCarrier takes the switch side down: the host's interface stays up but
// loses its carrier, like an unplugged cable.
func (lk *Link) NoCarrier() { lk.h.l.must("ip", "-n", lk.h.l.sw, "link", "set", lk.Port, "down") }

// DefaultRoute adds a default route via gw (which may be an address
// nobody owns: connect works, no packet arrives anywhere).
func (h *Host) DefaultRoute(gw string) {
	h.l.must("ip", "-n", h.NS, "route", "add", "default", "via", gw)
}

// DropInboundTCP makes the host's firewall drop new inbound TCP
// connections. match is an address (IPv4 or IPv6): a rule on the
// destination, which the host's own connections to it over loopback meet
// too; or an interface name: a rule on the input interface, which they
// never meet.
func (h *Host) DropInboundTCP(match string) {
	rule := fmt.Sprintf("iifname %q", match)
	if a, err := netip.ParseAddr(match); err == nil {
		rule = "ip daddr " + match
		if a.Is6() {
			rule = "ip6 daddr " + match
		}
	}
	h.l.nft(h.NS, fmt.Sprintf(`table inet drop%d {
	chain input_filter {
		type filter hook input priority 0; policy accept;
		%s tcp flags & (syn|ack) == syn drop
	}
}`, time.Now().UnixNano()%1e6, rule))
}

// Isolate turns on port isolation for the host's link on its segment:
// isolated ports cannot reach each other, only ports that are not
// isolated (a gateway), as AP/client isolation does on Wi-Fi.
func (lk *Link) Isolate() {
	lk.h.l.must("ip", "netns", "exec", lk.h.l.sw, "bridge", "link", "set", "dev", lk.Port, "isolated", "on")
}

// DropLarger makes the segment drop packets longer than n bytes, in both
// directions, without telling anyone: a path MTU black hole.
func (s *Segment) DropLarger(n int) {
	s.filter(fmt.Sprintf("meta length > %d drop", n))
}

// Bridge adds a bridge named name with the addresses, up. With container
// set, a veth pair joins it to a namespace of its own, as a container
// runtime does (the bridge then has carrier and only virtual ports);
// without, it has no port.
func (h *Host) Bridge(name string, container bool, cidrs ...string) {
	l := h.l
	l.t.Helper()
	l.must("ip", "-n", h.NS, "link", "add", name, "type", "bridge")
	if container {
		ct := h.NS + "-ct"
		l.must("ip", "netns", "add", ct)
		l.t.Cleanup(func() { exec.Command("ip", "netns", "del", ct).Run() })
		l.must("ip", "-n", h.NS, "link", "add", "vct"+name, "type", "veth", "peer", "name", "eth0", "netns", ct)
		l.must("ip", "-n", h.NS, "link", "set", "vct"+name, "master", name)
		l.must("ip", "-n", h.NS, "link", "set", "vct"+name, "up")
		l.must("ip", "-n", ct, "link", "set", "eth0", "up")
	}
	for _, c := range cidrs {
		l.must("ip", "-n", h.NS, "addr", "add", c, "dev", name)
	}
	l.must("ip", "-n", h.NS, "link", "set", name, "up")
}

// Tun adds a tun device named name with the addresses, up and held open
// by a helper process (so it has carrier, as with a running VPN client).
// The test binary's TestMain must call ServeTun.
func (h *Host) Tun(name string, cidrs ...string) {
	l := h.l
	l.t.Helper()
	p := start(h, func(c *exec.Cmd) { c.Env = append(c.Env, tunEnv+"="+name) }, os.Args[0], "-test.run=^$")
	Eventually(l.t, 5*time.Second, func() error {
		if !strings.Contains(p.Stdout(), "tun ready") {
			return fmt.Errorf("the tun holder has not opened %s: %s", name, p.Stderr())
		}
		if _, _, err := h.Run("ip", "link", "show", name); err != nil {
			return fmt.Errorf("no %s yet", name)
		}
		return nil
	})
	for _, c := range cidrs {
		l.must("ip", "-n", h.NS, "addr", "add", c, "dev", name)
	}
	l.must("ip", "-n", h.NS, "link", "set", name, "up")
}

const tunEnv = "PAIRING_LAN_TUN"

// ServeTun is the tun holder's side of Tun: when this process was started
// to hold a tun device, it creates it, says so and blocks until killed,
// and ServeTun does not return. Call it first in TestMain.
func ServeTun() {
	name := os.Getenv(tunEnv)
	if name == "" {
		return
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open /dev/net/tun:", err)
		os.Exit(1)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "TUNSETIFF:", err)
		os.Exit(1)
	}
	fmt.Println("tun ready")
	buf := make([]byte, 65536)
	for {
		if _, err := unix.Read(fd, buf); err != nil && err != unix.EINTR {
			select {}
		}
	}
}

// Must runs a command (ip, nft, bridge…) inside the host and fails the
// test when it fails.
func (h *Host) Must(name string, args ...string) string {
	h.l.t.Helper()
	return h.l.must(append([]string{"ip", "netns", "exec", h.NS, name}, args...)...)
}

// DisableIPv6 turns IPv6 off in the host (no link-local addresses).
func (h *Host) DisableIPv6() {
	sysctl(h, "net/ipv6/conf/all/disable_ipv6", "1")
	sysctl(h, "net/ipv6/conf/default/disable_ipv6", "1")
}

// Command returns a command that runs inside the host. A race-enabled
// binary exits at once (no 1 s race-runtime sleep at exit).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), h.Env...)
	return cmd
}

// Run runs a command inside the host to completion (at most 30 s).
func (h *Host) Run(name string, args ...string) (stdout, stderr string, err error) {
	return h.RunInput("", name, args...)
}

// RunInput is Run with input on the command's standard input.
func (h *Host) RunInput(input, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	cmd := h.Command(ctx, name, args...)
	cmd.Stdin = strings.NewReader(input)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// Proc is a background process in a host.
type Proc struct {
	cmd    *exec.Cmd
	out    SyncBuffer
	err    SyncBuffer
	done   chan struct{}
	result error
}

// Start starts a command inside the host in the background; it is killed
// at cleanup if still running.
func (h *Host) Start(name string, args ...string) *Proc {
	h.l.t.Helper()
	return start(h, nil, name, args...)
}

func start(h *Host, set func(*exec.Cmd), name string, args ...string) *Proc {
	h.l.t.Helper()
	p := &Proc{done: make(chan struct{})}
	p.cmd = h.Command(context.Background(), name, args...)
	if set != nil {
		set(p.cmd)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	if err := p.cmd.Start(); err != nil {
		h.l.t.Fatalf("start %s in %s: %v", name, h.Name, err)
	}
	go func() { p.result = p.cmd.Wait(); close(p.done) }()
	h.l.mu.Lock()
	h.l.procs = append(h.l.procs, p)
	h.l.mu.Unlock()
	return p
}

// Stdout and Stderr return what the process wrote so far.
func (p *Proc) Stdout() string { return p.out.String() }
func (p *Proc) Stderr() string { return p.err.String() }

// Stop sends SIGTERM and waits up to 5 s, then kills. It returns the
// process's exit error.
func (p *Proc) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.result
}

// Pid is the process's ID (`ip netns exec` execs the command in place).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill kills the process at once (a crash) and waits for it.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// SyncBuffer is a bytes.Buffer safe for one writer and readers at once
// (a process's output, a logger's).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Eventually calls f until it returns nil or timeout passes, then fails t
// with f's last error.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// HelperEnv marks a test process that RunTest started inside a host.
const HelperEnv = "PAIRING_LAN_HELPER"

// InHelper reports whether this test process is a helper started by
// RunTest; helper tests return at once otherwise.
func InHelper() bool { return os.Getenv(HelperEnv) == "1" }

// RunTest runs the test named name of the current test binary inside the
// host (at most 60 s), with env added, and fails t with its output when it
// fails. The helper test checks InHelper.
func (h *Host) RunTest(t testing.TB, name string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := h.Command(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(cmd.Env, HelperEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", name, h.Name, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s in %s did not pass:\n%s", name, h.Name, out)
	}
	return string(out)
}

// RunInHost builds a one-host LAN (eth0 10.9.0.1/24 on a bridge) and runs
// the helper test named name of the current test binary inside it. Call
// it from an outer test that skips when InHelper.
func RunInHost(t testing.TB, name string) string {
	t.Helper()
	RequireRoot(t)
	l := New(t)
	h := l.Host("a")
	h.Attach(l.Segment(), "10.9.0.1/24")
	return h.RunTest(t, name)
}

// WaitUDP waits until a socket in the host is bound to UDP port (a
// server's readiness, whatever it prints and however it buffers).
func (h *Host) WaitUDP(t testing.TB, port int) {
	t.Helper()
	want := fmt.Sprintf(":%04X ", port)
	Eventually(t, 5*time.Second, func() error {
		out, _, err := h.Run("cat", "/proc/net/udp", "/proc/net/udp6")
		if err == nil && strings.Contains(out, want) {
			return nil
		}
		return fmt.Errorf("nothing bound to UDP %d in %s", port, h.Name)
	})
}
