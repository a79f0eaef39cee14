// Package lantest builds simulated LANs for tests: hosts are network
// namespaces, wired by veth pairs to Linux bridges that live in a switch
// namespace of their own (so the host's br_netfilter never filters them).
// Everything is named uniquely per LAN and removed in t.Cleanup.
package lantest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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
