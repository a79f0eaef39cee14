package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
)

// TestMain: this test binary is also the tun holder of lantest.Tun
// (ServeTun returns at once unless started as one), and the process the
// TestHelper… functions run in inside a namespace (x.RunTest,
// lantest.RunInHost re-run it): they live in this package with their
// outer tests.
func TestMain(m *testing.M) {
	lantest.ServeTun()
	code := m.Run()
	lantest.RemoveBuilds()
	os.Exit(code)
}

// node is a host of a simulated LAN with the pairing binary at hand.
type node struct {
	*lantest.Host
	t      *testing.T
	bin    string
	state  string
	socket string
	daemon *lantest.Proc
	// wrap runs the daemon under a command (e.g. prlimit …  --).
	wrap []string
}

func newNode(t *testing.T, h *lantest.Host, bin string) *node {
	dir := filepath.Join(t.TempDir(), h.Name)
	return &node{Host: h, t: t, bin: bin, state: filepath.Join(dir, "state"), socket: filepath.Join(dir, "pairing.sock")}
}

// serveLogLevel is the daemons' log level: debug in tests (a failure
// shows everything), info in the benchmarks, as users run them (debug
// costs a tenth of the WebRTC transfer rate, in pion's formatted lines).
var serveLogLevel = "debug"

// serve starts the daemon and waits until its first acquisition is done.
func (n *node) serve(extra ...string) *lantest.Proc {
	n.t.Helper()
	args := append([]string{"serve", "--state-dir", n.state, "--socket", n.socket, "--name", n.Name, "--log-level", serveLogLevel}, extra...)
	if len(n.wrap) > 0 {
		n.daemon = n.Start(n.wrap[0], append(slices.Clone(n.wrap[1:]), append([]string{n.bin}, args...)...)...)
	} else {
		n.daemon = n.Start(n.bin, args...)
	}
	n.t.Cleanup(func() {
		n.daemon.Stop()
		if strings.Contains(n.daemon.Stderr(), "WARNING: DATA RACE") {
			n.t.Errorf("data race in the daemon on %s", n.Name)
		}
		if n.t.Failed() {
			n.t.Logf("daemon log of %s:\n%s", n.Name, n.daemon.Stderr())
		}
	})
	lantest.Eventually(n.t, 10*time.Second, func() error {
		select {
		case <-n.daemon.Done():
			n.t.Fatalf("daemon on %s exited:\n%s", n.Name, n.daemon.Stderr())
		default:
		}
		st, err := n.status()
		if err != nil {
			return err
		}
		if len(st.Stages) == 0 {
			return fmt.Errorf("%s: no acquisition yet; status: %.600s", n.Name, st.raw)
		}
		return nil
	})
	return n.daemon
}

// status is the daemon's status, with the raw JSON for error messages.
type status struct {
	control.Status
	raw string
}

func (n *node) status() (*status, error) {
	out, errOut, err := n.Run(n.bin, "status", "--json", "--socket", n.socket)
	if err != nil {
		return nil, fmt.Errorf("status on %s: %v: %s", n.Name, err, errOut)
	}
	var st status
	if err := json.Unmarshal([]byte(out), &st.Status); err != nil {
		return nil, fmt.Errorf("status JSON: %v\n%s", err, out)
	}
	st.raw = out
	return &st, nil
}

type discoverOut struct {
	Peers      []discovery.Peer `json:"peers"`
	DurationMS float64          `json:"duration_ms"`
}

// discover runs `pairing discover --json` in the host; it returns the
// result, stderr and the exit status.
func (n *node) discover(args ...string) (discoverOut, string, int) {
	n.t.Helper()
	out, errOut, err := n.Run(n.bin, append([]string{"discover", "--json", "--state-dir", n.state}, args...)...)
	var res discoverOut
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		n.t.Fatalf("discover JSON on %s: %v\nstdout: %s\nstderr: %s", n.Name, jerr, out, errOut)
	}
	return res, errOut, exitCode(err)
}

type addrOut struct {
	Addresses  []discovery.Address `json:"addresses"`
	Stages     []discovery.Stage   `json:"stages"`
	DurationMS float64             `json:"duration_ms"`
	FirstMS    float64             `json:"first_confirmed_ms"`
}

func (n *node) addr() (addrOut, string, int) {
	n.t.Helper()
	out, errOut, err := n.Run(n.bin, "addr", "--json")
	var res addrOut
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		n.t.Fatalf("addr JSON on %s: %v\nstdout: %s\nstderr: %s", n.Name, jerr, out, errOut)
	}
	return res, errOut, exitCode(err)
}

func (a addrOut) stage(t *testing.T, name string) discovery.Stage {
	t.Helper()
	for _, s := range a.Stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q in %+v", name, a.Stages)
	return discovery.Stage{}
}

func (a addrOut) has(ip string) bool {
	return slices.ContainsFunc(a.Addresses, func(x discovery.Address) bool { return x.IP.WithZone("") == netip.MustParseAddr(ip) && x.Confirmed })
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee interface{ ExitCode() int }
	if e, ok := err.(interface{ ExitCode() int }); ok {
		ee = e
		return ee.ExitCode()
	}
	return -1
}

func peerNamed(ps []discovery.Peer, name string) *discovery.Peer {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i]
		}
	}
	return nil
}

func hasAddr(as []netip.Addr, ip string) bool {
	return slices.ContainsFunc(as, func(a netip.Addr) bool { return a.WithZone("") == netip.MustParseAddr(ip) })
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

func hasAddrs(st *status, ip string) bool {
	for _, a := range st.Addresses {
		if a.IP.WithZone("").String() == ip {
			return true
		}
	}
	return false
}

// loneNode is host a alone on a segment with the address cidr.
func loneNode(t *testing.T, cidr string) *node {
	l, bin := lanWith(t)
	h := l.Host("a")
	h.Attach(l.Segment(), cidr)
	return newNode(t, h, bin)
}

// segmentOf builds one segment with hosts named names at 10.1.0.1, .2, …
// (/24), each with a default route via 10.1.0.254 (an address nobody
// owns, as on a home LAN) when route is set. Nothing runs yet.
func segmentOf(t *testing.T, bin string, route bool, names ...string) (*lantest.Segment, []*node) {
	l := lantest.New(t)
	seg := l.Segment()
	var ns []*node
	for i, name := range names {
		h := l.Host(name)
		h.Attach(seg, fmt.Sprintf("10.1.0.%d/24", i+1))
		if route {
			h.DefaultRoute("10.1.0.254")
		}
		ns = append(ns, newNode(t, h, bin))
	}
	return seg, ns
}

// rootBin skips (or in CI fails) without root, and builds the race
// binary the namespace tests run.
func rootBin(t *testing.T) string {
	lantest.RequireRoot(t)
	return lantest.BuildPairing(t, true)
}

func lanWith(t *testing.T) (*lantest.LAN, string) {
	bin := rootBin(t)
	return lantest.New(t), bin
}

// twoHosts: a (10.1.0.1) and b (10.1.0.2) on one segment, a serving
// with the extra serve flags.
func twoHosts(t *testing.T, serveArgs ...string) (a, b *node) {
	return twoHostsWith(t, rootBin(t), serveArgs...)
}

// twoHostsWith is twoHosts with a given binary.
func twoHostsWith(t *testing.T, bin string, serveArgs ...string) (a, b *node) {
	_, ns := segmentOf(t, bin, false, "a", "b")
	ns[0].serve(serveArgs...)
	return ns[0], ns[1]
}

func (n *node) qr(args ...string) control.Window {
	n.t.Helper()
	out, errOut, err := n.Run(n.bin, append([]string{"qr", "--json", "--socket", n.socket}, args...)...)
	if err != nil {
		n.t.Fatalf("qr on %s: %v: %s", n.Name, err, errOut)
	}
	var w control.Window
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		n.t.Fatalf("qr JSON: %v\n%s", err, out)
	}
	return w
}

// join runs `pairing join --json URL` on n (no daemon there unless started).
func (n *node) join(url string, extra ...string) (control.JoinResult, string, int) {
	n.t.Helper()
	args := append([]string{"join", "--json", "--state-dir", n.state, "--socket", n.socket, "--name", n.Name}, extra...)
	out, errOut, err := n.Run(n.bin, append(args, url)...)
	var res control.JoinResult
	if exitCode(err) == 0 {
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
			n.t.Fatalf("join JSON: %v\n%s", jerr, out)
		}
	}
	return res, errOut, exitCode(err)
}

func (n *node) peers() []control.Paired {
	n.t.Helper()
	out, errOut, err := n.Run(n.bin, "peers", "--json", "--state-dir", n.state, "--socket", n.socket)
	if err != nil {
		n.t.Fatalf("peers on %s: %v: %s", n.Name, err, errOut)
	}
	var ps []control.Paired
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		n.t.Fatalf("peers JSON: %v\n%s", err, out)
	}
	return ps
}

func portOf(url string) string {
	rest := url[strings.Index(url, "://")+3:]
	rest = rest[:strings.Index(rest, "/")]
	return rest[strings.LastIndex(rest, ":")+1:]
}

func itoa(i int) string { return strconv.Itoa(i) }

// pairedPair: a and b serving (extra serve flags for both) and paired.
func pairedPair(t *testing.T, serveArgs ...string) (a, b *node) {
	return pairedWith(t, serveArgs, serveArgs)
}

// pairedWith: a and b serving, each with its own extra serve flags, and
// paired.
func pairedWith(t *testing.T, aArgs, bArgs []string) (a, b *node) {
	t.Helper()
	a, b = twoHosts(t, aArgs...)
	b.serve(bArgs...)
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing a with b: %s", stderr)
	}
	return a, b
}

func (n *node) send(args ...string) (control.SendResult, string, int) {
	n.t.Helper()
	out, stderr, err := n.Run(n.bin, append([]string{"send", "--json", "--socket", n.socket}, args...)...)
	if err != nil && exitCode(err) != 1 {
		stderr += " (" + err.Error() + ")"
	}
	var res control.SendResult
	if exitCode(err) == 0 {
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
			n.t.Fatalf("send JSON: %v\n%s", jerr, out)
		}
	}
	return res, stderr, exitCode(err)
}

func (n *node) inbox() []control.InboxItem {
	n.t.Helper()
	out, stderr, err := n.Run(n.bin, "inbox", "--json", "--socket", n.socket)
	var items []control.InboxItem
	if err != nil || json.Unmarshal([]byte(out), &items) != nil {
		n.t.Fatalf("inbox: %v %s %s", err, out, stderr)
	}
	return items
}

// inboxSHA is the SHA-256 the inbox logs for the file named file ("" if
// it has none; the last one of that name).
func (n *node) inboxSHA(file string) string {
	n.t.Helper()
	var sum string
	for _, it := range n.inbox() {
		if it.File == file {
			sum = it.SHA256
		}
	}
	return sum
}
