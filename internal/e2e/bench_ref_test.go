package e2e

// A reference for the phone page's file transfers: the same headless
// Chromium (same flags, in the same namespace b) moving the same amount
// with a plain fetch to a plain Go HTTP server in the daemon's namespace
// a. Its figures bound what the page's own transfers could reach on this
// machine; the page's figures are read against them as ratios.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing/web"
)

// refRuns is how many times each transfer is timed (the median is the
// figure); refRunTimeout bounds one run of the three transfers (600 MiB
// and more at 20 Mbit/s on a loaded machine).
const (
	refRuns       = 3
	refRunTimeout = 5 * time.Minute
)

// refPage is the reference page: no inline script (the CSP forbids it).
const refPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>fetch reference</title>
<script src="/ref.js"></script></head>
<body><p id="status">loaded</p></body></html>
`

// refScript is the page's measurement: window.refRun(mib) uploads mib MiB
// as one Blob body, then as 1 MiB chunks in sequential fetches (as the
// page's bulk path sends its sealed chunks), then downloads mib MiB
// reading the stream and discarding it, each timed with performance.now()
// from the first request to the last byte confirmed. It sets
// window.refDone to the JSON result, or to "error: …".
const refScript = `"use strict";
const MiB = 1 << 20;
function randomMiB() {
  const b = new Uint8Array(MiB);
  for (let i = 0; i < MiB; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
  return b;
}
async function upload(body) {
  const res = await fetch("/up", { method: "POST", body, cache: "no-store" });
  if (!res.ok) throw new Error("upload: HTTP " + res.status);
  return Number(await res.text());
}
async function measure(mib) {
  const n = mib * MiB;
  const one = randomMiB();
  const blob = new Blob(Array(mib).fill(one), { type: "application/octet-stream" });
  const status = document.getElementById("status");
  status.textContent = "upload";
  let t0 = performance.now();
  const got = await upload(blob);
  const upMs = performance.now() - t0;
  if (got !== n) throw new Error("single upload: the server counted " + got + " of " + n);
  status.textContent = "chunks";
  t0 = performance.now();
  let sum = 0;
  for (let i = 0; i < mib; i++) sum += await upload(one);
  const upChunksMs = performance.now() - t0;
  if (sum !== n) throw new Error("chunked upload: the server counted " + sum + " of " + n);
  status.textContent = "download";
  t0 = performance.now();
  const res = await fetch("/down?n=" + n, { cache: "no-store" });
  if (!res.ok) throw new Error("download: HTTP " + res.status);
  const reader = res.body.getReader();
  let down = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    down += value.byteLength;
  }
  const downMs = performance.now() - t0;
  if (down !== n) throw new Error("download: read " + down + " of " + n);
  return { upMs, upChunksMs, downMs };
}
window.refRun = function (mib) {
  window.refDone = "";
  document.getElementById("status").textContent = "running";
  measure(mib).then(r => { window.refDone = JSON.stringify(r); }, e => { window.refDone = "error: " + e; });
};
`

// refTimes is one run's times in ms, as the page measured them.
type refTimes struct {
	UpMS       float64 `json:"upMs"`
	UpChunksMS float64 `json:"upChunksMs"`
	DownMS     float64 `json:"downMs"`
}

// benchBrowserRefHTTP measures the reference in the namespaces of a (the
// server, where the daemon runs) and b (Chromium, where the phone's page
// runs): mib MiB up in one fetch and down in one fetch, the medians of
// refRuns runs, in Mbit/s (10^6 bit/s, as the page's figures). It prints
// the chunked upload's figure (bench browser_ref_http_up_chunked_mbps),
// which only it has; the caller prints the two it returns. It fails t
// unless the server counted every byte and a's interface carried them.
func benchBrowserRefHTTP(t *testing.T, a, b *node, mib int) (upMbps, downMbps float64) {
	t.Helper()
	srv := startRefServer(t, a.Host)
	rx0, tx0 := ifaceBytes(t, a.Host)
	out := runLong(t, b.Host, "TestHelperRefBrowser", refRuns*refRunTimeout+time.Minute,
		"REF_URL="+srv.url, "REF_MIB="+strconv.Itoa(mib), "REF_PROFILE="+t.TempDir(), "REF_RUNS="+strconv.Itoa(refRuns))
	rx1, tx1 := ifaceBytes(t, a.Host)

	var up, chunks, down []float64
	total := float64(mib) * (1 << 20)
	mbps := func(ms float64) float64 { return total * 8 / 1e6 / (ms / 1000) }
	for _, line := range strings.Split(out, "\n") {
		js, ok := strings.CutPrefix(line, "REF_RUN ")
		if !ok {
			continue
		}
		var r refTimes
		if err := json.Unmarshal([]byte(js), &r); err != nil || r.UpMS <= 0 || r.UpChunksMS <= 0 || r.DownMS <= 0 {
			t.Fatalf("a run's times %q: %v", js, err)
		}
		up, chunks, down = append(up, mbps(r.UpMS)), append(chunks, mbps(r.UpChunksMS)), append(down, mbps(r.DownMS))
	}
	if len(up) != refRuns {
		t.Fatalf("%d runs of %d:\n%s", len(up), refRuns, out)
	}

	// Honesty: every byte reached the server's handlers and crossed a's
	// veth (each direction at least the payload; headers and TCP on top).
	wantUp, wantDown := int64(2*refRuns*mib)<<20, int64(refRuns*mib)<<20
	gotUp, gotDown := srv.counts()
	if gotUp != wantUp || gotDown != wantDown {
		t.Fatalf("the server counted %d bytes up and %d down, want %d and %d", gotUp, gotDown, wantUp, wantDown)
	}
	if rx1-rx0 < wantUp || tx1-tx0 < wantDown {
		t.Fatalf("%s's interface received %d and sent %d bytes, want at least %d and %d", a.Name, rx1-rx0, tx1-tx0, wantUp, wantDown)
	}
	t.Logf("reference, %d MiB, %d runs: up %.0f, up in 1 MiB chunks %.0f, down %.0f Mbit/s; %s received %d bytes, sent %d",
		mib, refRuns, up, chunks, down, a.Name, rx1-rx0, tx1-tx0)
	slices.Sort(up)
	slices.Sort(chunks)
	slices.Sort(down)
	fmt.Printf("bench browser_ref_http_up_chunked_mbps %.0f Mbit/s\n", chunks[len(chunks)/2])
	return up[len(up)/2], down[len(down)/2]
}

// refServer is TestHelperRefHTTP running in a host.
type refServer struct {
	url string
	mu  sync.Mutex
	up  int64
	dn  int64
}

func (s *refServer) counts() (up, down int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, s.dn
}

// startRefServer starts TestHelperRefHTTP in h and waits for its URL; it
// stops at cleanup (its standard input closed).
func startRefServer(t *testing.T, h *lantest.Host) *refServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := h.Command(ctx, os.Args[0], "-test.run=^TestHelperRefHTTP$", "-test.v", "-test.count=1")
	cmd.Env = append(cmd.Env, lantest.HelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lantest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &refServer{}
	urls := make(chan string, 1)
	read := make(chan struct{})
	var log lantest.SyncBuffer
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(&log, line)
			if u := between(line, "REF_URL<", ">"); u != "" {
				urls <- u
			}
			for _, c := range []struct {
				tag string
				n   *int64
			}{{"UP<", &s.up}, {"DOWN<", &s.dn}} {
				if v := between(line, c.tag, ">"); strings.HasPrefix(line, c.tag) && v != "" {
					k, _ := strconv.ParseInt(v, 10, 64)
					s.mu.Lock()
					*c.n += k
					s.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { <-read; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil && !t.Failed() {
				t.Errorf("the reference server: %v\n%s%s", err, log.String(), stderr.String())
			}
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
		if t.Failed() {
			t.Logf("the reference server's output:\n%s%s", log.String(), stderr.String())
		}
	})
	select {
	case s.url = <-urls:
	case <-read:
		t.Fatalf("the reference server exited:\n%s%s", log.String(), stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no URL from the reference server:\n%s%s", log.String(), stderr.String())
	}
	return s
}

// ifaceBytes is what h's eth0 received and sent so far.
func ifaceBytes(t *testing.T, h *lantest.Host) (rx, tx int64) {
	t.Helper()
	out, errOut, err := h.Run("cat", "/sys/class/net/eth0/statistics/rx_bytes", "/sys/class/net/eth0/statistics/tx_bytes")
	f := strings.Fields(out)
	if err != nil || len(f) != 2 {
		t.Fatalf("eth0's counters in %s: %v %s", h.Name, err, errOut)
	}
	rx, _ = strconv.ParseInt(f[0], 10, 64)
	tx, _ = strconv.ParseInt(f[1], 10, 64)
	return rx, tx
}

// TestHelperRefHTTP runs inside a host: a plain Go HTTP server on the
// host's first non-loopback IPv4 address, a free port. It serves the
// reference page (/ and /ref.js), POST /up (reads and discards the body,
// answers the count), GET /down?n=BYTES (n bytes from a fixed random
// buffer), every answer with the daemon's security headers and
// Cache-Control: no-store. It prints REF_URL<…>, then UP<bytes> and
// DOWN<bytes> per request, and stops when its standard input closes.
func TestHelperRefHTTP(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestBenchBrowserRef")
	}
	ip := ownIPv4(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, refPage)
	})
	mux.HandleFunc("GET /ref.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		io.WriteString(w, refScript)
	})
	mux.HandleFunc("POST /up", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Printf("UP<%d>\n", n)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	mux.HandleFunc("GET /down", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > 1<<34 {
			http.Error(w, "n: a byte count up to 16 GiB", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		var sent int64
		for sent < n {
			k, err := w.Write(buf[:min(int64(len(buf)), n-sent)])
			sent += int64(k)
			if err != nil {
				break
			}
		}
		fmt.Printf("DOWN<%d>\n", sent)
	})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			web.SecurityHeaders(w.Header())
			w.Header().Set("Cache-Control", "no-store")
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("REF_URL<http://%s/>\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	if err := <-served; err != http.ErrServerClosed {
		t.Fatal(err)
	}
}

// ownIPv4 is the first IPv4 address of an up, non-loopback interface.
func ownIPv4(t *testing.T) string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	t.Fatal("no IPv4 address to listen on")
	return ""
}

// TestHelperRefBrowser runs inside a host: Chromium as the phone's page
// runs it (openPage: the same flags and user agent) on REF_URL with
// REF_PROFILE, REF_RUNS times: a fresh load of the page, then
// window.refRun(REF_MIB). It prints REF_RUN {the page's times} per run.
func TestHelperRefBrowser(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestBenchBrowserRef")
	}
	url := os.Getenv("REF_URL")
	mib, _ := strconv.Atoi(os.Getenv("REF_MIB"))
	runs, _ := strconv.Atoi(os.Getenv("REF_RUNS"))
	if mib <= 0 || runs <= 0 {
		t.Fatalf("REF_MIB %q, REF_RUNS %q", os.Getenv("REF_MIB"), os.Getenv("REF_RUNS"))
	}
	p := openPage(t, url, os.Getenv("REF_PROFILE"), nil)
	for i := range runs {
		if i > 0 {
			p.call("Page.navigate", map[string]any{"url": url})
		}
		// A fresh document: the old one had refDone set.
		p.waitFor(`document.readyState === "complete" && typeof window.refRun === "function" && window.refDone === undefined`, 30*time.Second)
		p.eval(fmt.Sprintf(`window.refRun(%d); "started"`, mib))
		p.waitFor(`!!window.refDone`, refRunTimeout)
		res := p.eval(`window.refDone`)
		if strings.HasPrefix(res, "error") {
			t.Fatalf("run %d: %s", i+1, res)
		}
		fmt.Printf("REF_RUN %s\n", res)
	}
	p.close()
}

// TestBenchBrowserRef prints the reference alone (PAIRING_BENCH=1):
// fetch up and down, 200 MiB, between the namespaces the phone's page
// bench uses, with a daemon serving in a as there.
func TestBenchBrowserRef(t *testing.T) {
	if os.Getenv("PAIRING_BENCH") != "1" {
		t.Skip("set PAIRING_BENCH=1 (make bench) to measure")
	}
	lantest.RequireRoot(t)
	requireChromium(t)
	serveLogLevel = "info"
	t.Cleanup(func() { serveLogLevel = "debug" })
	a, b := twoHostsWith(t, lantest.BuildPairing(t, false))
	mib := 200
	if v, err := strconv.Atoi(os.Getenv("PAIRING_REF_MIB")); err == nil && v > 0 {
		mib = v
	}
	up, down := benchBrowserRefHTTP(t, a, b, mib)
	fmt.Printf("bench browser_ref_http_up_mbps %.0f Mbit/s\nbench browser_ref_http_down_mbps %.0f Mbit/s\n", up, down)
}
