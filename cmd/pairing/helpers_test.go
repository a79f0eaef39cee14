package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lan"
)

func TestMain(m *testing.M) {
	lan.ServeTun()
	code := m.Run()
	lan.RemoveBuilds()
	os.Exit(code)
}

// node is a host of a simulated LAN with the pairing binary at hand.
type node struct {
	*lan.Host
	t      *testing.T
	bin    string
	state  string
	socket string
	daemon *lan.Proc
	// wrap runs the daemon under a command (e.g. prlimit …  --).
	wrap []string
}

func newNode(t *testing.T, h *lan.Host, bin string) *node {
	dir := filepath.Join(t.TempDir(), h.Name)
	return &node{Host: h, t: t, bin: bin, state: filepath.Join(dir, "state"), socket: filepath.Join(dir, "pairing.sock")}
}

// serveLogLevel is the daemons' log level: debug in tests (a failure
// shows everything), info in the benchmarks, as users run them (debug
// costs a tenth of the WebRTC transfer rate, in pion's formatted lines).
var serveLogLevel = "debug"

// serve starts the daemon and waits until its first acquisition is done.
func (n *node) serve(extra ...string) *lan.Proc {
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
	lan.Eventually(n.t, 10*time.Second, func() error {
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
func segmentOf(t *testing.T, bin string, route bool, names ...string) (*lan.Segment, []*node) {
	l := lan.New(t)
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
