package e2e

// The many-devices figures of `make bench`: 60 daemons in namespaces on
// one bridge, started within one second.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/lantest"
)

func lanBench(t *testing.T, bin string, n int) {
	l := lantest.New(t)
	l.ReserveNeighbours(n + 1)
	seg := l.Segment()
	var nodes []*node
	for i := range n + 1 {
		h := l.Host(fmt.Sprintf("h%d", i))
		h.Attach(seg, fmt.Sprintf("10.3.%d.%d/16", i/200, i%200+1))
		nodes = append(nodes, newNode(t, h, bin))
	}
	newcomer, nodes := nodes[n], nodes[:n]
	start := time.Now()
	for _, x := range nodes {
		x.daemon = x.Start(bin, "serve", "--state-dir", x.state, "--socket", x.socket, "--name", x.Name, "--no-mdns", "--log-format", "json")
		t.Cleanup(func() { x.daemon.Stop() })
	}
	// The convergence counts from the first start, so it includes this.
	fmt.Printf("bench lan%d_start_spread_ms %.0f ms\n", n, float64(time.Since(start).Microseconds())/1000)
	// Converged: every daemon logged "peer found" for all the others.
	var last time.Time
	deadline := time.Now().Add(30 * time.Second)
	for _, x := range nodes {
		for {
			found := peerFoundTimes(x.daemon.Stderr())
			if len(found) >= n-1 {
				if found[n-2].After(last) {
					last = found[n-2]
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s found %d of %d peers after 30 s", x.Name, len(found), n-1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	fmt.Printf("bench lan%d_converge_ms %.0f ms\n", n, float64(last.Sub(start).Microseconds())/1000)
	// A newcomer's discover until all have answered.
	res, _, _ := newcomer.discover("--timeout", "2s", "--no-mdns")
	var worst float64
	for _, p := range res.Peers {
		worst = max(worst, p.ElapsedMS)
	}
	if len(res.Peers) != n {
		t.Errorf("the newcomer's discover found %d of %d", len(res.Peers), n)
	}
	fmt.Printf("bench lan%d_discover_ms %.0f ms\n", n, worst)
	// Memory with n-1 peers each, and the beacon traffic at idle.
	sent := func() uint64 {
		var total uint64
		for _, x := range nodes {
			if st, err := x.status(); err == nil {
				total += st.Beacon.Sent
			}
		}
		return total
	}
	median := func(key string) float64 {
		var v []float64
		for _, x := range nodes {
			v = append(v, procStatusMB(t, x.daemon.Pid(), key))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("bench lan%d_rss_mb %.1f MB\n", n, median("VmRSS"))
	// What the RSS is made of: the heap and stacks, and the pages of the
	// binary this process has mapped (shared with every other daemon).
	fmt.Printf("bench lan%d_rss_anon_mb %.1f MB\n", n, median("RssAnon"))
	fmt.Printf("bench lan%d_rss_file_mb %.1f MB\n", n, median("RssFile"))
	// A whole announce interval: daemons started together announce
	// together, so a shorter window measures the phase, not the rate.
	before, t0 := sent(), time.Now()
	time.Sleep(beacon.DefaultAnnounceInterval)
	pps := float64(sent()-before) / time.Since(t0).Seconds()
	fmt.Printf("bench lan%d_beacon_pps %.1f packets/s\n", n, pps)
	fmt.Printf("bench lan%d_beacon_pps_per_daemon %.2f packets/s\n", n, pps/float64(n))
	var failed uint64
	reasons := map[string]uint64{}
	for _, x := range nodes {
		if st, err := x.status(); err == nil {
			failed += st.Beacon.SendErrors
			for k, v := range st.Beacon.SendFailed {
				reasons[k] += v
			}
		}
	}
	t.Logf("send errors across the LAN: %d %v", failed, reasons)
	told := 0
	for _, x := range nodes {
		told += strings.Count(x.daemon.Stderr(), "told peer where we see it")
	}
	t.Logf("observed calls (telling a peer where we see it) across the LAN: %d", told)
	// Under the start-up load every daemon kept an address (the issue:
	// some failed their own self-ping and had none for a while).
	for _, x := range nodes {
		if log := x.daemon.Stderr(); strings.Contains(log, "no reachable own address") || !strings.Contains(log, `"msg":"own addresses"`) {
			t.Errorf("%s was without an address of its own during the start:\n%s", x.Name, log)
		}
	}
	// How the first and the last started daemons filled their tables.
	for _, x := range append(nodes[:2:2], nodes[n-2:]...) {
		f := peerFoundTimes(x.daemon.Stderr())
		var at []string
		for i := 0; i < len(f); i += 10 {
			at = append(at, fmt.Sprintf("%d@%s", i+1, f[i].Sub(start).Round(time.Millisecond)))
		}
		st, _ := x.status()
		t.Logf("%s: %s; sent %d, failed %v, received %d, dropped %v, refused %d", x.Name, strings.Join(at, " "), st.Beacon.Sent, st.Beacon.SendFailed, st.Beacon.Received, st.Beacon.Dropped, st.Beacon.PeersRefused)
	}
}

// peerFoundTimes are the times of a daemon's "peer found" lines (JSON
// log), in order.
func peerFoundTimes(log string) []time.Time {
	var out []time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"msg":"peer found"`) {
			continue
		}
		i := strings.Index(line, `"time":"`)
		if i < 0 {
			continue
		}
		ts := line[i+8:]
		if tm, err := time.Parse(time.RFC3339Nano, ts[:strings.Index(ts, `"`)]); err == nil {
			out = append(out, tm)
		}
	}
	return out
}
