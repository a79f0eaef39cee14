package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/lantest"
)

// TestBenchFigures prints the speed figures of `make bench`, one line each:
// `bench <name> <median> <unit>`. It runs only with PAIRING_BENCH=1: the
// figures are measurements on a shared machine, never asserted in tests.
func TestBenchFigures(t *testing.T) {
	if os.Getenv("PAIRING_BENCH") != "1" {
		t.Skip("set PAIRING_BENCH=1 (make bench) to measure")
	}
	lantest.RequireRoot(t)
	serveLogLevel = "info"
	t.Cleanup(func() { serveLogLevel = "debug" })
	const runs = 15
	bin := lantest.BuildPairing(t, false)

	t.Run("addr_preferred_ms", func(t *testing.T) {
		l := lantest.New(t)
		h := l.Host("a")
		h.Attach(l.Segment(), "10.2.0.1/24")
		h.DefaultRoute("10.2.0.254")
		n := newNode(t, h, bin)
		report(t, "addr_preferred_ms", runs, func() float64 {
			res, stderr, code := n.addr()
			if code != 0 || res.Addresses[0].Stage != "preferred" {
				t.Fatalf("addr: exit %d %+v %s", code, res.Addresses, stderr)
			}
			return res.FirstMS
		})
	})

	// From the daemon's start until one of its addresses carries another
	// host's proof (the peer's observed call or reverse probe).
	t.Run("addr_proved_by_peer_ms", func(t *testing.T) {
		_, ns := segmentOf(t, bin, false, "a", "b")
		a, b := ns[0], ns[1]
		b.serve()
		report(t, "addr_proved_by_peer_ms", 7, func() float64 {
			time.Sleep(time.Second) // b's limit on reverse probes for one source
			d := a.serve()
			defer d.Stop()
			var took float64
			lantest.Eventually(t, 10*time.Second, func() error {
				st, err := a.status()
				if err != nil {
					return err
				}
				for _, x := range st.Addresses {
					for _, p := range x.Proofs {
						if p.Kind == discovery.ProofReached {
							took = float64(p.At.Sub(st.Started).Microseconds()) / 1000
							return nil
						}
					}
				}
				return fmt.Errorf("no address of a reached yet")
			})
			return took
		})
	})

	t.Run("addr_fallback_peer_ms", func(t *testing.T) {
		x, y := peerOnlyLAN(t, bin)
		y.serve()
		report(t, "addr_fallback_peer_ms", runs, func() float64 {
			res, stderr, code := x.addr()
			if code != 0 || res.Addresses[0].Stage != "peer" {
				t.Fatalf("addr: exit %d %+v %s", code, res.Addresses, stderr)
			}
			return res.FirstMS
		})
	})

	t.Run("join_ms", func(t *testing.T) {
		_, ns := segmentOf(t, bin, false, "a", "b")
		a, b := ns[0], ns[1]
		a.serve()
		var whole []float64
		report(t, "join_ms", runs, func() float64 {
			url := a.qr().URL // a new window: the last join closed the old one
			start := time.Now()
			res, stderr, code := b.join(url)
			whole = append(whole, float64(time.Since(start).Microseconds())/1000)
			if code != 0 {
				t.Fatalf("join: exit %d: %s", code, stderr)
			}
			return res.DurationMS
		})
		report(t, "join_command_ms", len(whole), func() float64 { v := whole[0]; whole = whole[1:]; return v })
	})

	t.Run("serve_ready_ms", func(t *testing.T) {
		l := lantest.New(t)
		h := l.Host("a")
		h.Attach(l.Segment(), "10.2.0.1/24")
		h.DefaultRoute("10.2.0.254")
		sock := filepath.Join(t.TempDir(), "notify.sock")
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		h.Env = []string{"NOTIFY_SOCKET=" + sock}
		n := newNode(t, h, bin)
		buf := make([]byte, 4096)
		report(t, "serve_ready_ms", 10, func() float64 {
			start := time.Now()
			p := n.Start(bin, "serve", "--state-dir", n.state, "--socket", n.socket)
			defer p.Stop()
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				k, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("no READY=1: %v\n%s", err, p.Stderr())
				}
				if strings.HasPrefix(string(buf[:k]), "READY=1") {
					return float64(time.Since(start).Microseconds()) / 1000
				}
			}
		})
	})

	t.Run("idle", func(t *testing.T) {
		_, nodes := segmentOf(t, bin, false, "a", "b", "c")
		for _, n := range nodes {
			n.serve()
		}
		pid := nodes[0].daemon.Pid()
		time.Sleep(5 * time.Second) // settle after start
		cpu0, t0 := cpuTicks(t, pid), time.Now()
		time.Sleep(30 * time.Second)
		fmt.Printf("bench idle_rss_mb %.1f MB\n", rssMB(t, pid))
		time.Sleep(30 * time.Second)
		cpu := float64(cpuTicks(t, pid)-cpu0) / 100 // USER_HZ
		fmt.Printf("bench idle_cpu_pct %.3f %%\n", 100*cpu/time.Since(t0).Seconds())
	})

	t.Run("netchange_reannounce_ms", func(t *testing.T) {
		a, b := twoHostsWith(t, bin)
		b.serve()
		i := 0
		report(t, "netchange_reannounce_ms", 10, func() float64 {
			i++
			old, next := fmt.Sprintf("10.1.0.%d", 19+i), fmt.Sprintf("10.1.0.%d", 20+i)
			if i == 1 {
				old = "10.1.0.1"
			}
			// Delete first: deleting a primary address takes its
			// secondaries in the same subnet with it.
			start := time.Now()
			a.Run("ip", "addr", "del", old+"/24", "dev", "eth0")
			a.Run("ip", "addr", "add", next+"/24", "dev", "eth0")
			for time.Since(start) < 10*time.Second {
				if st, err := b.status(); err == nil && len(st.Peers) == 1 && hasAddr(st.Peers[0].Addresses, next) {
					return float64(time.Since(start).Microseconds()) / 1000
				}
			}
			t.Fatalf("b never saw %s", next)
			return 0
		})
	})

	t.Run("discover_mdns_first_ms", func(t *testing.T) {
		l := lantest.New(t)
		seg := l.Segment()
		seg.DropUDP(27280) // beacons filtered: only mDNS answers
		ha, hq := l.Host("a"), l.Host("q")
		ha.Attach(seg, "10.1.0.1/24")
		hq.Attach(seg, "10.1.0.2/24")
		hq.DefaultRoute("10.1.0.254")
		a, q := newNode(t, ha, bin), newNode(t, hq, bin)
		a.serve()
		report(t, "discover_mdns_first_ms", runs, func() float64 {
			res, stderr, code := q.discover("--first", "--timeout", "2s")
			if code != 0 || len(res.Peers) != 1 || res.Peers[0].Source != "mdns" {
				t.Fatalf("discover: exit %d %+v %s", code, res.Peers, stderr)
			}
			return res.Peers[0].ElapsedMS
		})
	})

	t.Run("diag", func(t *testing.T) {
		seg, ns := segmentOf(t, bin, true, "a", "b", "c")
		for _, n := range ns {
			n.serve()
		}
		a := ns[0]
		diagMS := func() float64 {
			out, _, _ := a.Run(bin, "diag", "--json", "--config", "/dev/null", "--state-dir", a.state, "--socket", a.socket)
			var rep struct {
				DurationMS float64 `json:"duration_ms"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("diag: %v\n%s", err, out)
			}
			return rep.DurationMS
		}
		report(t, "diag_healthy_ms", 5, diagMS)
		seg.FilterMulticast()
		a.Run("ip", "route", "del", "default")
		report(t, "diag_worst_ms", 3, diagMS)
	})

	t.Run("rtc", func(t *testing.T) {
		// a closes its connections at once, so each send connects anew;
		// b keeps them (the default), so its sends reuse one.
		a, b := twoHostsWith(t, bin, "--config", writeConf(t, "connection-idle = 1ms\n"))
		b.serve()
		if _, stderr, code := a.join(b.qr().URL); code != 0 {
			t.Fatalf("pairing: %s", stderr)
		}
		report(t, "rtc_connect_ms", runs, func() float64 {
			res, stderr, code := a.send("b", "ping")
			if code != 0 || res.Reused {
				t.Fatalf("send: exit %d, reused %v: %s", code, res.Reused, stderr)
			}
			return res.ConnectMS
		})
		b.send("a", "hello")
		report(t, "rtc_reuse_ms", runs, func() float64 {
			res, stderr, code := b.send("a", "ping")
			if code != 0 || !res.Reused {
				t.Fatalf("send: exit %d, reused %v: %s", code, res.Reused, stderr)
			}
			return res.ConnectMS
		})
		file := filepath.Join(t.TempDir(), "50mb.bin")
		os.WriteFile(file, make([]byte, 50<<20), 0o644)
		reportUnit(t, "rtc_throughput_mbps", "Mbit/s", 5, func() float64 {
			res, stderr, code := a.send("b", "--file", file, "--path", "webrtc")
			if code != 0 {
				t.Fatalf("send: %s", stderr)
			}
			return float64(res.Bytes) * 8 / 1e6 / ((res.DurationMS - res.ConnectMS) / 1000)
		})
	})

	t.Run("xfer", func(t *testing.T) { xferBench(t, bin, 5) })
	t.Run("xfer_resume_ratio", func(t *testing.T) { resumeBench(t, bin, 3) })
	// Two sizes of LAN: the beacon traffic per daemon must stay the same
	// (linear in N, not N²).
	t.Run("lan60", func(t *testing.T) { lanBench(t, bin, 60) })
	t.Run("lan20", func(t *testing.T) { lanBench(t, bin, 20) })

	t.Run("rtc_turn_connect_ms", func(t *testing.T) {
		conf := writeConf(t, "turn = turn:10.1.0.1:3478?transport=udp\nturn-secret = S3cret\nrelay-only = true\nconnection-idle = 1ms\n")
		a, b := twoHostsWith(t, bin, "--config", conf)
		startCoturn(t, a.Host, "10.1.0.1")
		b.serve("--config", conf)
		if _, stderr, code := a.join(b.qr().URL); code != 0 {
			t.Fatalf("pairing: %s", stderr)
		}
		report(t, "rtc_turn_connect_ms", runs, func() float64 {
			res, stderr, code := a.send("b", "ping")
			if code != 0 || res.Reused || !strings.Contains(res.Pair, "relay") {
				t.Fatalf("send: %s %+v", stderr, res)
			}
			return res.ConnectMS
		})
	})

	t.Run("browser_pair_ms", func(t *testing.T) {
		requireChromium(t)
		a, b := twoHostsWith(t, bin)
		// The page's own clock, from navigation start to paired: browser
		// start-up is not in it.
		report(t, "browser_pair_ms", 5, func() float64 {
			status, ms := browseTimed(t, b.Host, a.qr().URL, t.TempDir(), "")
			if !strings.HasPrefix(status, "Paired.") || ms == 0 {
				t.Fatalf("page: %q", status)
			}
			return ms
		})
	})

	// A paired phone's page: loaded to connected (its own clock), and a
	// 200 MiB file each way (up: picked to the daemon's SHA-256 ack, down:
	// pairing send's duration to the page's ack).
	t.Run("browser_big_file_mb", func(t *testing.T) { requireChromium(t); benchBrowserBigFile(t, bin) })

	t.Run("browser_files", func(t *testing.T) {
		requireChromium(t)
		a, b := twoHostsWith(t, bin)
		profile := t.TempDir()
		w := a.qr()
		browseTimed(t, b.Host, w.URL, profile, "", "PAIR_NAME=bench phone")
		report(t, "browser_reconnect_ms", 5, func() float64 {
			status, ms := browseTimed(t, b.Host, w.URL, profile, "")
			if !strings.HasPrefix(status, "Connected again") || ms == 0 {
				t.Fatalf("page: %q", status)
			}
			return ms
		})
		const mib = 200
		file, _ := randomFile(t, "file.bin", mib<<20)
		var up, down []float64
		for range 3 {
			out := phone(t, b.Host, "PAIR_URL="+w.URL, "PAIR_PROFILE="+profile, "PAIR_FILES="+file, "PAIR_RECV_FILE="+file,
				"PAIR_BIN="+a.bin, "PAIR_SOCKET="+a.socket, "PAIR_PEER=bench phone")
			var upMS, downMS float64
			fmt.Sscanf(between(out, "UPLOAD_MS<", ">"), "%g", &upMS)
			fmt.Sscanf(between(out, "DOWNLOAD_MS<", ">"), "%g", &downMS)
			if upMS == 0 || downMS == 0 || !strings.HasPrefix(between(out, "FILES<", ">"), "done") {
				t.Fatalf("file transfers:\n%s", out)
			}
			up, down = append(up, mib*8*1.048576/upMS*1000), append(down, mib*8*1.048576/downMS*1000)
		}
		slices.Sort(up)
		slices.Sort(down)
		fmt.Printf("bench browser_file_up_mbps %.0f Mbit/s\nbench browser_file_down_mbps %.0f Mbit/s\n", up[1], down[1])
		t.Logf("up %v down %v Mbit/s", up, down)
		// The same browser's plain fetch to a Go HTTP server on the same
		// hosts: what HTTP gives without the page's guarantees.
		refUp, refDown := benchBrowserRefHTTP(t, a, b, mib)
		fmt.Printf("bench browser_ref_http_up_mbps %.0f Mbit/s\nbench browser_ref_http_down_mbps %.0f Mbit/s\n", refUp, refDown)
		fmt.Printf("bench browser_file_up_ratio %.3f\nbench browser_file_down_ratio %.3f\n", up[1]/refUp, down[1]/refDown)
	})

	_, nodes := segmentOf(t, bin, false, "q", "p1", "p2", "p3")
	q := nodes[0]
	nodes[1].serve()
	// The beacon alone (mDNS answers too, and is timed separately).
	report(t, "discover_first_peer_ms", runs, func() float64 {
		res, stderr, code := q.discover("--first", "--no-mdns", "--timeout", "2s")
		if code != 0 || len(res.Peers) != 1 {
			t.Fatalf("discover: exit %d %+v %s", code, res.Peers, stderr)
		}
		return res.Peers[0].ElapsedMS
	})
	nodes[2].serve()
	nodes[3].serve()
	report(t, "discover_all_ms", runs, func() float64 {
		res, stderr, code := q.discover("--no-mdns", "--timeout", "600ms")
		if code != 0 || len(res.Peers) != 3 {
			t.Fatalf("discover: exit %d %+v %s", code, res.Peers, stderr)
		}
		last := 0.0
		for _, p := range res.Peers {
			last = max(last, p.ElapsedMS)
		}
		return last
	})
}

// cpuTicks is the user+system CPU time of pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// rssMB is the resident set size of pid.
func rssMB(t *testing.T, pid int) float64 { return procStatusMB(t, pid, "VmRSS") }

// procStatusMB reads one of the kB figures of /proc/PID/status (VmRSS,
// RssAnon, RssFile) in MB.
func procStatusMB(t *testing.T, pid int, key string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			kb, _ := strconv.Atoi(strings.Fields(rest)[0])
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// report runs f n times and prints the median in ms.
func report(t *testing.T, name string, n int, f func() float64) { reportUnit(t, name, "ms", n, f) }

// reportUnit runs f n times and prints the median.
func reportUnit(t *testing.T, name, unit string, n int, f func() float64) {
	var v []float64
	for range n {
		v = append(v, f())
	}
	slices.Sort(v)
	fmt.Printf("bench %s %.2f %s\n", name, v[len(v)/2], unit)
	t.Logf("%s: min %.2f median %.2f max %.2f over %d runs", name, v[0], v[len(v)/2], v[len(v)-1], n)
}
