package e2e

// The page's bulk path under a man in the middle (issue: "the page's
// bulk path refuses a chunk that was altered, replayed or reordered on
// the wire, and a request without the key"). In the daemon's namespace
// an nft rule sends the phone's TCP for the daemon's port to a tampering
// proxy (TestHelperBulkTamperProxy) that hands everything on to the
// daemon unchanged except the bulk path's chunks, which it alters,
// replays or reorders once per direction; the page in a real Chromium
// moves a file up and one down through it. A keyless client in the
// phone's namespace (TestHelperBulkKeyless) tries the live transfers'
// chunks without the key.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// bulkFileMB is each direction's file: 8 chunks of rtc.BulkChunk, so the tampered ones
// (2 to 5) sit in the middle of a transfer.
const bulkFileMB = 8 * rtc.BulkChunk >> 20

// bulkProxyPort is the tampering proxy's port in the daemon's namespace.
const bulkProxyPort = 18080

// bulkAttack is one man in the middle: the proxy's mode, and the proxy
// lines (see bulkEvent) it must have seen: the daemon's answers to what
// it altered, replayed or reordered.
type bulkAttack struct {
	name, mode string
	want       []string
}

var bulkAttacks = []bulkAttack{
	// One byte flipped in upload chunk 3's body, and in download chunk
	// 3's answer.
	{"altered", "alter", []string{
		"proxy POST 3 altered -> 403 bad_seal",
		"page GET 3 altered -> 200",
	}},
	// Upload: chunk 3's request sent again once the daemon took it,
	// chunk 2's body under index 4, chunk 3's under index 5. Download:
	// chunk 4 answered with chunk 3's answer; chunk 3's request (with
	// its proof) sent again, and its proof under index 5.
	{"replayed", "replay", []string{
		"proxy POST 3 replayed -> 409 replayed",
		"proxy POST 4 moved -> 403 bad_seal",
		"proxy POST 5 ahead -> 409 out_of_order",
		"page GET 4 replayed -> 200",
		"proxy GET 3 replayed -> 409 replayed",
		"proxy GET 5 ahead -> 403 proof",
	}},
	// Upload: chunk 3 held back (the page hears 204), chunk 4 handed on
	// first, chunk 3 after it. Download: chunk 3 answered with chunk 2's
	// answer (no wire attacker can fetch chunk 4 early: its request needs
	// a proof of the key for index 4).
	{"reordered", "swap", []string{
		"proxy POST 4 swapped -> 409 out_of_order",
		"page GET 3 swapped -> 200",
	}},
	// Nothing altered: the proxy holds upload and download chunk 2 while
	// a keyless client tries both transfers; then both complete.
	{"keyless", "hold", []string{
		"page POST 2 held -> 204",
		"page GET 2 held -> 200",
	}},
}

// bulkEvent is one line of the proxy: who sent the request (the page,
// the proxy itself, or another client of the phone's host), what, the
// proxy's doing, and the daemon's answer as the proxy saw it.
var bulkEvent = regexp.MustCompile(`(?m)^BULK (page|proxy|other) (GET|POST) (\d+) (\S+) -> (\d+) ?(\S*)$`)

// TestAttackBulkTamper: for each attack, a real daemon in a, the page in
// headless Chromium in b, paired; the page sends a 16 MiB file and the
// daemon sends one, each on the bulk path through the proxy. The daemon
// refuses every chunk that was altered, replayed or reordered (the proxy
// sees its answer); nothing it refused is written (every large file in
// its state directory, read while the proxy holds the page's next
// request and at the end, is a prefix of the page's file; the inbox's
// copy, if any, is the file); the page never asks for the chunk after
// one that was not the daemon's own, and either fails the transfer
// keeping only the chunks before the refused one (for a resume), or
// completes it with the sender's SHA-256. The page, as it is, fails
// every transfer with a refused chunk (it does not retry).
func TestAttackBulkTamper(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	requireChromium(t)
	t.Parallel()
	bin := rootBin(t)
	for _, at := range bulkAttacks {
		t.Run(at.name, func(t *testing.T) {
			t.Parallel()
			bulkTamper(t, bin, at)
		})
	}
}

func bulkTamper(t *testing.T, bin string, at bulkAttack) {
	_, ns := segmentOf(t, bin, false, "a", "b")
	a, b := ns[0], ns[1]
	a.serve()
	port := strconv.Itoa(a.port())
	base := "http://10.1.0.1:" + port
	release := t.TempDir()
	proxy := a.Start("env", lantest.HelperEnv+"=1", "GORACE=atexit_sleep_ms=0", "TAMPER_MODE="+at.mode, "TAMPER_TARGET=10.1.0.1:"+port,
		"TAMPER_LISTEN=:"+strconv.Itoa(bulkProxyPort), "TAMPER_RELEASE="+release,
		os.Args[0], "-test.run=^TestHelperBulkTamperProxy$", "-test.v", "-test.count=1")
	t.Cleanup(func() {
		proxy.Stop()
		if t.Failed() {
			t.Logf("proxy:\n%s%s", proxy.Stdout(), proxy.Stderr())
		}
	})
	lantest.Eventually(t, 20*time.Second, func() error {
		if strings.Contains(proxy.Stdout(), "LISTENING") {
			return nil
		}
		return fmt.Errorf("the proxy is not listening: %s%s", proxy.Stdout(), proxy.Stderr())
	})
	// The phone's TCP for the daemon's port goes to the proxy; the
	// proxy's own connections to the daemon are local and pass.
	nft := fmt.Sprintf(`table ip tamper {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr 10.1.0.2 tcp dport %s redirect to :%d
	}
}
`, port, bulkProxyPort)
	if _, stderr, err := a.RunInput(nft, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v %s", err, stderr)
	}

	up, upSum := randomFile(t, "up.bin", bulkFileMB<<20)
	down, downSum := randomFile(t, "down.bin", bulkFileMB<<20)
	page := helperAsync(b.Host, "TestHelperBulkPage", 150*time.Second,
		"PAIR_URL="+a.qr().URL, "PAIR_PROFILE="+t.TempDir(), "PAIR_NAME=phone", "PAIR_BIN="+a.bin, "PAIR_SOCKET="+a.socket,
		"BULK_UP="+up, "BULK_DOWN="+down)
	orig, err := os.ReadFile(up)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy holds the page's request after its doing on the upload
	// (and before upload and download chunk 2 in the keyless attack):
	// meanwhile the daemon's state is read (and the keyless client runs).
	var out string
	held := regexp.MustCompile(`HOLD (POST|GET) (\S+) (\d+)`)
	methods := []string{"POST"}
	if at.mode == "hold" {
		methods = append(methods, "GET")
	}
	for _, method := range methods {
		var id, next string
		for deadline := time.Now().Add(90 * time.Second); id == ""; {
			for _, m := range held.FindAllStringSubmatch(proxy.Stdout(), -1) {
				if m[1] == method {
					id, next = m[2], m[3]
				}
			}
			select {
			case out = <-page:
				t.Fatalf("the page ended before the proxy held its %s:\n%s\nproxy:\n%s", method, out, proxy.Stdout())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("the proxy held no %s; proxy:\n%s", method, proxy.Stdout())
			}
		}
		if at.mode == "hold" {
			dir := map[string]string{"POST": "up", "GET": "down"}[method]
			kout := b.RunTest(t, "TestHelperBulkKeyless", "BULK_BASE="+base, "BULK_ID="+id, "BULK_DIR="+dir, "BULK_NEXT="+next)
			t.Logf("keyless on the %s transfer:\n%s", dir, strings.Join(regexp.MustCompile(`(?m)^KEYLESS .*$`).FindAllString(kout, -1), "\n"))
		}
		if method == "POST" {
			onlyPrefixes(t, a.state, orig, "while the upload is held")
		}
		if err := os.WriteFile(filepath.Join(release, method), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out = <-page
	if !strings.Contains(out, "--- PASS: TestHelperBulkPage") {
		t.Fatalf("the page:\n%s", out)
	}
	log := proxy.Stdout()
	events := bulkEvent.FindAllStringSubmatch(log, -1)

	// Both transfers took the bulk path through the proxy, and the
	// daemon answered each tampering with its refusal.
	if !strings.Contains(log, "HTTP POST /p/offer") {
		t.Errorf("the page's offer did not pass the proxy: the redirect is not in place")
	}
	for _, w := range []string{"page POST 0 pass -> 204", "page GET 0 pass -> 200"} {
		if !strings.Contains(log, "BULK "+w) {
			t.Errorf("the proxy never saw %q: not on the bulk path?", w)
		}
	}
	for _, w := range at.want {
		if !strings.Contains(log, "BULK "+w) {
			t.Errorf("the proxy did not see %q", w)
		}
	}

	// Up: what the daemon keeps is the page's bytes, and only in the
	// inbox once it has all of them.
	onlyPrefixes(t, a.state, orig, "at the end")
	upState := between(out, "UP_STATE<", ">")
	var inbox []string
	for _, it := range a.inbox() {
		if it.Kind == "file" {
			inbox = append(inbox, it.File+" "+it.SHA256)
			if it.SHA256 != upSum {
				t.Errorf("the inbox holds %s with SHA-256 %s, the page's file has %s", it.File, it.SHA256, upSum)
			}
		}
	}
	switch {
	case strings.HasPrefix(upState, "done:"):
		if len(inbox) != 1 {
			t.Errorf("the page says the upload is done; the inbox holds %q", inbox)
		}
	case strings.HasPrefix(upState, "failed:"):
		if at.mode == "hold" {
			t.Errorf("the untampered upload failed: %q", upState)
		}
		if len(inbox) != 0 {
			t.Errorf("the page says the upload failed; the inbox holds %q", inbox)
		}
	default:
		t.Errorf("the upload ended as %q", upState)
	}

	// Down: the page asks for chunk i+1 as soon as chunk i arrived,
	// before it opens it, but never for chunk i+2 unless chunk i was the
	// daemon's own (a chunk that does not open ends the transfer), and
	// what it keeps is the daemon's file or nothing.
	genuine := map[string]bool{}
	for _, e := range events {
		if e[1] != "page" || e[2] != "GET" {
			continue
		}
		if i, _ := strconv.Atoi(e[3]); i > 1 && !genuine[strconv.Itoa(i-2)] {
			t.Errorf("the page asked for chunk %d after a chunk %d that was not the daemon's", i, i-2)
		}
		if e[5] == "200" && (e[4] == "pass" || e[4] == "held") {
			genuine[e[3]] = true
		}
	}
	downState, pageSum, send := between(out, "DOWN_STATE<", ">"), between(out, "PAGE_SHA<", ">"), between(out, "SEND<", ">SEND")
	switch {
	case strings.HasPrefix(downState, "done:"):
		if pageSum != downSum {
			t.Errorf("the page received a file with SHA-256 %q, the daemon sent %s", pageSum, downSum)
		}
	case strings.HasPrefix(downState, "failed:"):
		if at.mode == "hold" {
			t.Errorf("the untampered download failed: %q", downState)
		}
		if pageSum != "" {
			t.Errorf("a failed download has a SHA-256 on the page: %q", pageSum)
		}
		// It may keep the chunks before the refused one (a resume), never
		// a byte of that one.
		if between(out, "KEPT_PREFIX<", ">") != "true" {
			t.Errorf("the page kept %s bytes of a failed download that are not the file's first bytes", between(out, "KEPT<", ">"))
		}
		if strings.Contains(send, "SHA-256 mismatch") || strings.Contains(downState, "damaged") {
			t.Errorf("the page took every chunk and only the whole file's SHA-256 caught it: %q / %q", downState, send)
		}
		if strings.HasPrefix(send, "0|") {
			t.Errorf("pairing send succeeded although the page failed: %q", send)
		}
	default:
		t.Errorf("the download ended as %q", downState)
	}
	var seen []string
	for _, e := range events {
		if e[4] != "pass" {
			seen = append(seen, strings.TrimPrefix(e[0], "BULK "))
		}
	}
	t.Logf("%s: the proxy's doings and the daemon's answers: %s", at.name, strings.Join(seen, "; "))
	t.Logf("%s: page up %q, down %q (kept %s bytes); pairing send %q", at.name, upState, downState, between(out, "KEPT<", ">"), strings.TrimSpace(send))
	if t.Failed() {
		t.Logf("proxy:\n%s\npage:\n%s", log, out)
	}
}

// onlyPrefixes fails t unless every file of a chunk or more under dir
// (an inbox, its partials) is a prefix of orig: nothing the daemon
// refused was written.
func onlyPrefixes(t *testing.T, dir string, orig []byte, when string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() < rtc.BulkChunk {
			return nil
		}
		got, err := os.ReadFile(p)
		if err == nil && !bytes.HasPrefix(orig, got) {
			t.Errorf("%s, %s (%d bytes) is not a prefix of the page's file: refused bytes were written", when, p, len(got))
		}
		return nil
	})
}

// helperAsync runs the helper test name inside h in the background (at
// most d) and hands back its output with its exit error.
func helperAsync(h *lantest.Host, name string, d time.Duration, env ...string) <-chan string {
	done := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		cmd := h.Command(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
		cmd.Env = append(append(cmd.Env, lantest.HelperEnv+"=1"), env...)
		out, err := cmd.CombinedOutput()
		done <- fmt.Sprintf("%s\nHELPER_ERR<%v>", out, err)
	}()
	return done
}

// keptJS reads the page's storage of received files: a JSON list of
// each file's pieces, put together, in base64.
const keptJS = `new Promise(resolve => {
  const o = indexedDB.open("pairing");
  o.onerror = () => resolve("[]");
  o.onsuccess = () => {
    const t = o.result.transaction("chunks"), s = t.objectStore("chunks");
    const keys = s.getAllKeys(), vals = s.getAll();
    t.oncomplete = async () => {
      const by = {};
      keys.result.forEach((k, i) => { (by[k[0]] = by[k[0]] || []).push([k[1], vals.result[i]]); });
      const out = [];
      for (const id in by) {
        const blob = new Blob(by[id].sort((a, b) => a[0] - b[0]).map(p => p[1]));
        const url = await new Promise(r => { const f = new FileReader(); f.onload = () => r(f.result); f.readAsDataURL(blob); });
        out.push(url.slice(url.indexOf(",") + 1));
      }
      resolve(JSON.stringify(out));
    };
  };
})`

// TestHelperBulkPage runs inside the phone's host: the page in Chromium
// on PAIR_URL, paired as PAIR_NAME; it sends BULK_UP (a file picked) and
// then has the daemon (PAIR_BIN, PAIR_SOCKET) send it BULK_DOWN. It
// prints UP_STATE<state:text>, DOWN_STATE<state:text>, PAGE_SHA<the
// received file's SHA-256, if any>, for a failed download KEPT<bytes the
// page kept of it for a resume> and KEPT_PREFIX<whether they are the
// file's first bytes>, and SEND<exit status|output>SEND.
func TestHelperBulkPage(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestAttackBulkTamper")
	}
	p := openPage(t, os.Getenv("PAIR_URL"), os.Getenv("PAIR_PROFILE"), nil)
	name := os.Getenv("PAIR_NAME")
	if kind, text := p.pair(name); kind != "ok" {
		t.Fatalf("pairing: %s %s", kind, text)
	}
	final := func(dir string) string {
		return fmt.Sprintf(`(li => li ? li.dataset.state + ":" + li.querySelector("small").textContent : "")(document.querySelector('#files li[data-dir=%s][data-state]'))`, dir)
	}
	if f := os.Getenv("BULK_UP"); f != "" {
		p.pick(f)
		p.waitFor(`!!document.querySelector('#files li[data-dir=out][data-state]')`, 90*time.Second)
		fmt.Printf("UP_STATE<%s>\n", p.eval(final("out")))
	}
	if f := os.Getenv("BULK_DOWN"); f != "" {
		sent := make(chan string, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, os.Getenv("PAIR_BIN"), "send", "--socket", os.Getenv("PAIR_SOCKET"), name, "--file", f).CombinedOutput()
			sent <- fmt.Sprintf("%d|%s", exitCode(err), strings.Join(strings.Fields(string(out)), " "))
		}()
		p.waitFor(`!!document.querySelector('#files li[data-dir=in][data-state]')`, 90*time.Second)
		state := p.eval(final("in"))
		fmt.Printf("DOWN_STATE<%s>\nPAGE_SHA<%s>\n", state, p.eval(`(li => li && li.dataset.sha256 || "")(document.querySelector('#files li[data-dir=in]'))`))
		if strings.HasPrefix(state, "failed:") {
			// What the page kept for a resume: read once it stays put.
			kept, last := p.eval(keptJS), ""
			for deadline := time.Now().Add(10 * time.Second); kept != last && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
				last, kept = kept, p.eval(keptJS)
			}
			orig, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var pieces []string
			if err := json.Unmarshal([]byte(kept), &pieces); err != nil {
				t.Fatalf("the page's storage: %v %.200s", err, kept)
			}
			n, prefix := 0, true
			for _, b64 := range pieces {
				b, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					t.Fatal(err)
				}
				n += len(b)
				prefix = prefix && bytes.HasPrefix(orig, b)
			}
			fmt.Printf("KEPT<%d>\nKEPT_PREFIX<%v>\n", n, prefix)
		}
		select {
		case s := <-sent:
			fmt.Printf("SEND<%s>SEND\n", s)
		case <-time.After(90 * time.Second):
			fmt.Printf("SEND<still running>SEND\n")
		}
	}
	p.close()
}

// TestHelperBulkTamperProxy runs inside the daemon's host until killed:
// an HTTP proxy on TAMPER_LISTEN to the daemon at TAMPER_TARGET, the
// Host header kept. Everything passes unchanged but the bulk path's
// chunks, which TAMPER_MODE alters, replays, reorders or holds, each
// once; after its doing on the upload (before upload and download chunk
// 2 when it holds) it holds the page's request until the file POST (or
// GET) appears in TAMPER_RELEASE. It prints
// LISTENING, then HTTP <method> <path> per other request, a bulkEvent
// line per bulk request, and HOLD <method> <id> <index> when it holds
// one.
func TestHelperBulkTamperProxy(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestAttackBulkTamper")
	}
	target := &url.URL{Scheme: "http", Host: os.Getenv("TAMPER_TARGET")}
	p := &tamperProxy{
		mode:    os.Getenv("TAMPER_MODE"),
		target:  target.Host,
		release: os.Getenv("TAMPER_RELEASE"),
		rp: &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		}},
		client: &http.Client{Timeout: 60 * time.Second},
		saved:  map[string]answer{},
		once:   map[string]bool{},
	}
	srv := &http.Server{Addr: os.Getenv("TAMPER_LISTEN"), Handler: p}
	fmt.Println("LISTENING")
	t.Fatal(srv.ListenAndServe())
}

// tamperProxy is TestHelperBulkTamperProxy's handler.
type tamperProxy struct {
	mode, target, release string
	rp                    *httputil.ReverseProxy
	client                *http.Client
	mu                    sync.Mutex
	saved                 map[string]answer // "POST 2": the request's; "GET 3": the answer's
	once                  map[string]bool
}

// exchange is one bulk request as the proxy got it.
type exchange struct {
	who, method, id string
	i               int
	host            string
	header          http.Header
	body            []byte
}

// answer is a status, headers and body (a request's, or an answer's).
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (p *tamperProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/p/bulk/")
	if !ok {
		fmt.Printf("HTTP %s %s\n", r.Method, r.URL.Path)
		p.rp.ServeHTTP(w, r)
		return
	}
	idStr, iStr, _ := strings.Cut(rest, "/")
	i, _ := strconv.Atoi(iStr)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	who := "page"
	if strings.HasPrefix(r.UserAgent(), "Go-http-client") {
		who = "other"
	}
	x := exchange{who: who, method: r.Method, id: idStr, i: i, host: r.Host, header: r.Header.Clone(), body: body}
	a := p.handle(x)
	for k, v := range a.header {
		switch k {
		case "Content-Length", "Connection", "Transfer-Encoding":
		default:
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// first reports whether key happens for the first time.
func (p *tamperProxy) first(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.once[key] {
		return false
	}
	p.once[key] = true
	return true
}

func (p *tamperProxy) save(key string, a answer) {
	p.mu.Lock()
	p.saved[key] = a
	p.mu.Unlock()
}

func (p *tamperProxy) load(key string) (answer, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.saved[key]
	return a, ok
}

// handle does the mode's doing with the page's request x and returns
// what the page gets.
func (p *tamperProxy) handle(x exchange) answer {
	if x.who != "page" {
		return p.do(x, "pass", x.i, x.body)
	}
	key := x.method + " " + strconv.Itoa(x.i)
	up := x.method == http.MethodPost
	switch {
	case p.mode == "alter" && up && x.i == 3 && p.first(key):
		b := bytes.Clone(x.body)
		b[len(b)/2] ^= 0x01
		x.who = "proxy"
		a := p.do(x, "altered", x.i, b)
		p.hold(x)
		return a
	case p.mode == "alter" && !up && x.i == 3 && p.first(key):
		a := p.forward(x)
		if a.status == http.StatusOK {
			a.body = bytes.Clone(a.body)
			a.body[len(a.body)/2] ^= 0x01
		}
		p.event(x, "altered", x.i, a)
		return a

	case p.mode == "replay" && up:
		a := p.do(x, "pass", x.i, x.body)
		p.save(key, answer{header: x.header, body: x.body})
		if x.i == 3 && a.status == http.StatusNoContent && p.first("replay up") {
			two, _ := p.load("POST 2")
			x.who = "proxy"
			p.do(x, "replayed", 3, x.body)
			p.do(x, "moved", 4, two.body)
			p.do(x, "ahead", 5, x.body)
			p.hold(x)
		}
		return a
	case p.mode == "replay" && !up && x.i == 4 && p.first(key):
		a := p.forward(x)
		three, ok := p.load("GET 3")
		if a.status == http.StatusOK && ok {
			a.body = three.body
		}
		p.event(x, "replayed", x.i, a)
		// The page's request for chunk 3 again, and its proof under 5.
		req3, _ := p.load("GET 3 request")
		y := exchange{who: "proxy", method: x.method, id: x.id, host: x.host, header: req3.header}
		p.do(y, "replayed", 3, nil)
		p.do(y, "ahead", 5, nil)
		return a
	case p.mode == "replay" && !up:
		a := p.do(x, "pass", x.i, nil)
		p.save(key, a)
		p.save(key+" request", answer{header: x.header})
		return a

	case p.mode == "swap" && up && x.i == 3 && p.first(key):
		p.save(key, answer{header: x.header, body: x.body})
		p.event(x, "held-back", x.i, answer{status: http.StatusNoContent})
		return answer{status: http.StatusNoContent}
	case p.mode == "swap" && up && x.i == 4 && p.first(key):
		x.who = "proxy"
		a := p.do(x, "swapped", 4, x.body)
		if three, ok := p.load("POST 3"); ok {
			p.do(x, "late", 3, three.body)
		}
		p.hold(x)
		return a
	case p.mode == "swap" && !up && x.i == 3 && p.first(key):
		a := p.forward(x)
		if two, ok := p.load("GET 2"); ok && a.status == http.StatusOK {
			a.body = two.body
		}
		p.event(x, "swapped", x.i, a)
		return a
	case p.mode == "swap" && !up:
		a := p.do(x, "pass", x.i, nil)
		p.save(key, a)
		return a

	case p.mode == "hold" && x.i == 2 && p.first(key):
		p.hold(x)
		return p.do(x, "held", x.i, x.body)
	}
	return p.do(x, "pass", x.i, x.body)
}

// hold says HOLD <method> <id> <index> and waits until the file named
// for the method appears in the release directory (at most 60 s).
func (p *tamperProxy) hold(x exchange) {
	fmt.Printf("HOLD %s %s %d\n", x.method, x.id, x.i)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(p.release, x.method)); err == nil {
			return
		}
	}
}

// forward sends x on to the daemon as it is.
func (p *tamperProxy) forward(x exchange) answer { return p.send(x, x.i, x.body) }

// do sends x's request to the daemon for chunk i with body and prints
// what it was and the daemon's answer.
func (p *tamperProxy) do(x exchange, what string, i int, body []byte) answer {
	a := p.send(x, i, body)
	p.event(x, what, i, a)
	return a
}

func (p *tamperProxy) event(x exchange, what string, i int, a answer) {
	var e struct{ Reason string }
	if a.status >= 400 {
		json.Unmarshal(a.body, &e)
	}
	fmt.Printf("BULK %s %s %d %s -> %d %s\n", x.who, x.method, i, what, a.status, e.Reason)
}

func (p *tamperProxy) send(x exchange, i int, body []byte) answer {
	var rd io.Reader
	if x.method == http.MethodPost {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(x.method, "http://"+p.target+"/p/bulk/"+x.id+"/"+strconv.Itoa(i), rd)
	if err != nil {
		return answer{status: http.StatusBadGateway}
	}
	req.Host = x.host
	for k, v := range x.header {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Accept-Encoding":
		default:
			req.Header[k] = v
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		fmt.Printf("PROXY_ERR %v\n", err)
		return answer{status: http.StatusBadGateway}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestHelperBulkKeyless runs inside the phone's host during a live bulk
// transfer BULK_ID (BULK_DIR up or down, its next chunk BULK_NEXT) of
// the daemon at BULK_BASE: requests without the transfer's key, and
// with made-up ids. Each is refused with its reason and carries nothing
// of the file; it prints a KEYLESS line per request.
func TestHelperBulkKeyless(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestAttackBulkTamper")
	}
	base, id, dir := os.Getenv("BULK_BASE"), os.Getenv("BULK_ID"), os.Getenv("BULK_DIR")
	next, _ := strconv.ParseUint(os.Getenv("BULK_NEXT"), 10, 63)
	var other [chacha20poly1305.KeySize]byte
	rand.Read(other[:])
	aead, _ := chacha20poly1305.New(other[:])
	seal := func(label, id string, i uint64, p []byte) []byte {
		return aead.Seal(nil, rtc.BulkNonce(label, i), p, []byte(rtc.BulkAAD+id))
	}
	var rid [16]byte
	rand.Read(rid[:])
	random := base64.RawURLEncoding.EncodeToString(rid[:])
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	path := func(id string, i uint64) string { return fmt.Sprintf("/p/bulk/%s/%d", id, i) }
	type probe struct {
		name, method, path string
		header             map[string]string
		body               []byte
		status             int
		reason             string
	}
	post := map[string]string{"Content-Type": "application/octet-stream", "Origin": base}
	with := func(h map[string]string, k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range h {
			if a != k {
				m[a] = b
			}
		}
		return m
	}
	var probes []probe
	if dir == "up" {
		probes = []probe{
			{"sealed under another key", "POST", path(id, next), post, seal("up", id, next, junk), 403, "bad_seal"},
			{"not sealed", "POST", path(id, next), post, junk, 403, "bad_seal"},
			{"cross-site (Origin)", "POST", path(id, next), with(post, "Origin", "http://evil.example"), seal("up", id, next, junk), 403, "cross_site"},
			{"cross-site (Sec-Fetch-Site)", "POST", path(id, next), with(with(post, "Origin", ""), "Sec-Fetch-Site", "cross-site"), seal("up", id, next, junk), 403, "cross_site"},
			{"wrong Content-Type", "POST", path(id, next), with(post, "Content-Type", "text/plain"), seal("up", id, next, junk), 415, "content_type"},
			{"larger than a chunk", "POST", path(id, next), post, seal("up", id, next, make([]byte, rtc.BulkChunk+1)), 413, "too_big"},
			{"a GET of an upload", "GET", path(id, next), nil, nil, 404, "unknown"},
			{"a made-up id", "POST", path(random, 0), post, seal("up", random, 0, junk), 404, "unknown"},
		}
	} else {
		probes = []probe{
			{"no proof", "GET", path(id, next), nil, nil, 403, "proof"},
			{"a proof under another key", "GET", path(id, next), map[string]string{rtc.BulkProofHeader: base64.RawURLEncoding.EncodeToString(seal("rq", id, next, nil))}, nil, 403, "proof"},
			{"a proof that is no seal", "GET", path(id, next), map[string]string{rtc.BulkProofHeader: base64.RawURLEncoding.EncodeToString(junk[:16])}, nil, 403, "proof"},
			{"a POST to a download", "POST", path(id, next), post, seal("up", id, next, junk), 404, "unknown"},
			{"a made-up id", "GET", path(random, 0), map[string]string{rtc.BulkProofHeader: base64.RawURLEncoding.EncodeToString(seal("rq", random, 0, nil))}, nil, 404, "unknown"},
		}
	}
	client := &http.Client{Timeout: 20 * time.Second}
	for _, pr := range probes {
		req, err := http.NewRequest(pr.method, base+pr.path, bytes.NewReader(pr.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range pr.header {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s: %v", pr.name, err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		var e struct{ Reason string }
		json.Unmarshal(b, &e)
		fmt.Printf("KEYLESS %s: %d %s\n", pr.name, resp.StatusCode, e.Reason)
		if resp.StatusCode != pr.status || e.Reason != pr.reason {
			t.Errorf("%s: %d %q, want %d %q", pr.name, resp.StatusCode, e.Reason, pr.status, pr.reason)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" || len(b) > 1024 {
			t.Errorf("%s: answered %d bytes of %q", pr.name, len(b), ct)
		}
	}
}
