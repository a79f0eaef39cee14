package e2e

// A driver for the phone's page in headless Chromium (DevTools protocol)
// for the phone's life tests: a clock moved with faketime, a browser
// without WebRTC, big files with the browser's memory sampled from /proc,
// a re-pair in place of an old entry, and an unpair while the page is
// open.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/lanpairing/pairing/internal/lantest"
)

// libfaketime moves a browser's clock (Debian's faketime package).
const libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

func requireFaketime(t *testing.T) {
	if _, err := os.Stat(libfaketime); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs faketime (apt-get install faketime)")
		}
		t.Skip("needs faketime")
	}
}

// fakeTimeEnv is the environment that moves a browser's clock by offset
// (e.g. "+300d"). (With FAKETIME_DONT_FAKE_MONOTONIC Chromium hangs.)
func fakeTimeEnv(offset string) []string {
	return []string{"LD_PRELOAD=" + libfaketime, "FAKETIME=" + offset}
}

// page is one Chromium with the page open, driven over DevTools.
type page struct {
	t   *testing.T
	cmd *exec.Cmd
	ws  *websocket.Conn
	id  int
	mu  sync.Mutex
}

// openPage starts Chromium at phone size on about:blank with profile
// and env, runs the scripts before every document, and navigates to url.
func openPage(t *testing.T, url, profile string, env []string, before ...string) *page {
	ua := "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"
	if u := os.Getenv("PAIR_UA"); u != "" {
		ua = u
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--remote-debugging-port=9222", "--remote-allow-origins=*", "--window-size=390,844",
		"--user-agent="+ua, "--user-data-dir="+profile, "about:blank")
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &page{t: t, cmd: cmd}
	t.Cleanup(p.kill)
	ws, err := devtools(9222, "")
	if err != nil {
		t.Fatal(err)
	}
	p.ws = ws
	p.call("Page.enable", nil)
	for _, src := range before {
		p.call("Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": src})
	}
	p.call("Page.navigate", map[string]any{"url": url})
	return p
}

func (p *page) call(method string, params map[string]any) json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.id++
	websocket.JSON.Send(p.ws, map[string]any{"id": p.id, "method": method, "params": params})
	p.ws.SetReadDeadline(time.Now().Add(20 * time.Second)) // a crashed page never answers
	for {
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if err := websocket.JSON.Receive(p.ws, &resp); err != nil {
			p.t.Fatalf("%s: %v", method, err)
		}
		if resp.ID == p.id {
			return resp.Result
		}
	}
}

func (p *page) eval(expr string) string {
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	json.Unmarshal(p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}), &r)
	return fmt.Sprint(r.Result.Value)
}

func (p *page) status() string { return p.eval(`document.getElementById("status").textContent`) }

func (p *page) waitFor(cond string, d time.Duration) {
	p.t.Helper()
	for deadline := time.Now().Add(d); p.eval(cond) != "true"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("page never got to %s; status %q", cond, p.status())
		}
	}
}

// settle waits until the page asks for a name ("ask") or says something
// final ("ok", "bad"), and returns that with the status text.
func (p *page) settle(d time.Duration) (string, string) {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		s := p.eval(`(function(){const s=document.getElementById("status"); if (!document.getElementById("nameform").hidden) return "ask|" + s.textContent; return s.className + "|" + s.textContent})()`)
		kind, text, _ := strings.Cut(s, "|")
		if kind == "ok" || kind == "bad" || kind == "ask" || time.Now().After(deadline) {
			return kind, text
		}
	}
}

// pair settles the page, naming it name when it asks, and returns the
// final state and status.
func (p *page) pair(name string) (string, string) {
	kind, text := p.settle(30 * time.Second)
	if kind == "ask" {
		p.eval(fmt.Sprintf(`document.getElementById("name").value = %q; document.getElementById("nameform").requestSubmit(); "named"`, name))
		kind, text = p.settle(30 * time.Second)
	}
	return kind, text
}

// shot saves a screenshot as name.png in PAIRING_SCREENSHOTS (or
// PAIR_SHOTS inside a helper), if set.
func (p *page) shot(name string) {
	dir := os.Getenv("PAIR_SHOTS")
	if dir == "" {
		return
	}
	var s struct{ Data []byte }
	json.Unmarshal(p.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}), &s)
	os.WriteFile(filepath.Join(dir, name+".png"), s.Data, 0o644)
}

// pick puts files in the page's file input, as a person choosing them.
func (p *page) pick(files ...string) {
	var doc struct{ Root struct{ NodeID int } }
	json.Unmarshal(p.call("DOM.getDocument", nil), &doc)
	var node struct{ NodeID int }
	json.Unmarshal(p.call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#pick"}), &node)
	p.call("DOM.setFileInputFiles", map[string]any{"nodeId": node.NodeID, "files": files})
}

// close closes the browser as a person does, so its profile is written.
func (p *page) close() {
	p.mu.Lock()
	p.id++
	websocket.JSON.Send(p.ws, map[string]any{"id": p.id, "method": "Browser.close"})
	p.mu.Unlock()
	exited := make(chan struct{})
	go func() { p.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-exited
	}
	p.cmd = nil
}

func (p *page) kill() {
	if p.cmd != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
	if p.ws != nil {
		p.ws.Close()
	}
}

// rssOf is the summed resident memory of pid and all its descendants
// (the browser's processes: a Blob can move between them), in bytes.
func rssOf(pid int) int64 {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces; cut after ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			parent[n], _ = strconv.Atoi(f[1])
		}
	}
	in := func(n int) bool {
		for i := 0; i < 64 && n > 1; i++ {
			if n == pid {
				return true
			}
			n = parent[n]
		}
		return false
	}
	var sum int64
	page := int64(os.Getpagesize())
	for n := range parent {
		if !in(n) {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(n) + "/statm")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 1 {
			r, _ := strconv.ParseInt(f[1], 10, 64)
			sum += r * page
		}
	}
	return sum
}

// peakGrowth samples the browser's memory every 100 ms until stop is
// closed and returns the baseline and the highest sample, in MB.
func (p *page) peakGrowth(stop <-chan struct{}) (base, peak float64) {
	pid := p.cmd.Process.Pid
	b := rssOf(pid)
	top := b
	for {
		select {
		case <-stop:
			return float64(b) / (1 << 20), float64(top) / (1 << 20)
		case <-time.After(100 * time.Millisecond):
			top = max(top, rssOf(pid))
		}
	}
}

// runLong is h.RunTest for a helper that may take up to d (RunTest
// allows a minute).
func runLong(t *testing.T, h *lantest.Host, name string, d time.Duration, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := h.Command(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(cmd.Env, lantest.HelperEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s in %s: %v\n%s", name, h.Name, err, out)
	}
	return string(out)
}

// helperEnv is what a TestHelperPhoneLife run needs, with its knobs.
func helperEnv(a *node, url, profile string, knobs ...string) []string {
	e := []string{"PAIR_URL=" + url, "PAIR_PROFILE=" + profile, "PAIR_BIN=" + a.bin, "PAIR_SOCKET=" + a.socket}
	if d := os.Getenv("PAIRING_SCREENSHOTS"); d != "" {
		e = append(e, "PAIR_SHOTS="+d)
	}
	return append(e, knobs...)
}

// TestHelperPhoneLife runs inside a host: the page in Chromium on
// PAIR_URL with PAIR_PROFILE, named PAIR_NAME when it asks; knobs:
//   - PAIR_FAKETIME: the browser's clock moved (e.g. "+300d");
//   - PAIR_NORTC: RTCPeerConnection removed before the page runs;
//   - PAIR_BEFORE: after pairing, says it was that paired browser and
//     confirms (BEFORE<names offered>);
//   - PAIR_RECV_FILE (with PAIR_PEER): the device sends it to the page,
//     the browser's memory sampled (PAGE_SHA, SEND_SHA, GROWTH_MB), then
//     the person dismisses it (SPOOLED_AFTER<pieces left in storage>);
//   - PAIR_SAVE_DIR (with PAIR_RECV_FILE): the person taps Save, and the
//     browser saves it there (SAVED_SHA);
//   - PAIR_SEND_FILE: the page sends it (FILE_STATE, GROWTH_UP_MB);
//   - PAIR_SYNC: writes "paired", then waits until the page says it is no
//     no longer paired (UNPAIRED<status>);
//   - PAIR_SHOT: the screenshots' name prefix;
//   - PAIR_UA: the user agent (an Android phone's by default).
//
// It prints KIND<ok|bad>, STATUS<…>STATUS, SAID_MS, RETRY, CERT_EXPIRES,
// IOS_HINT<the Home Screen hint, if shown>.
func TestHelperPhoneLife(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestPhoneLife")
	}
	var env, before []string
	if off := os.Getenv("PAIR_FAKETIME"); off != "" {
		env = fakeTimeEnv(off)
	}
	if os.Getenv("PAIR_NORTC") != "" {
		before = append(before, `delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;`)
	}
	p := openPage(t, os.Getenv("PAIR_URL"), os.Getenv("PAIR_PROFILE"), env, before...)
	shot := func(name string) { p.shot(os.Getenv("PAIR_SHOT") + name) }
	name := os.Getenv("PAIR_NAME")
	if name == "" {
		name = "test phone"
	}
	kind, text := p.settle(30 * time.Second)
	if kind == "ask" {
		shot("name")
		p.eval(fmt.Sprintf(`document.getElementById("name").value = %q; document.getElementById("nameform").requestSubmit(); "named"`, name))
		kind, text = p.settle(30 * time.Second)
	}
	fmt.Printf("KIND<%s>\nSAID_MS<%s>\nRETRY<%s>\n", kind, p.eval(`document.body.dataset.saidMs`), p.eval(`document.getElementById("retry").hidden ? "" : document.getElementById("retry").textContent`))
	shot(kind)
	if kind == "ok" {
		fmt.Printf("CERT_EXPIRES<%s>\nIOS_HINT<%s>\n", p.eval(`document.body.dataset.certExpires`), p.eval(`document.getElementById("ios").hidden ? "" : document.querySelector("#ios p").textContent`))
	}
	device := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(os.Getenv("PAIR_BIN"), append([]string{"send", "--socket", os.Getenv("PAIR_SOCKET"), os.Getenv("PAIR_PEER")}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pairing send to the page: %v %s", err, out)
		}
		return out
	}
	if old := os.Getenv("PAIR_BEFORE"); old != "" && kind == "ok" {
		p.waitFor(`!document.getElementById("before").hidden`, 10*time.Second)
		fmt.Printf("BEFORE<%s>\n", p.eval(`[...document.querySelectorAll("#beforelist button")].map(b => b.textContent).join(";")`))
		shot("before")
		p.eval(fmt.Sprintf(`[...document.querySelectorAll("#beforelist button")].find(b => b.textContent.includes(%q)).click(); "picked"`, old))
		p.waitFor(`!document.getElementById("confirm").hidden`, 5*time.Second)
		shot("confirm")
		prev := p.status()
		p.eval(`document.getElementById("confirmyes").click(); "confirmed"`)
		// The device's answer changes the status (or fails it); the form
		// hides at the click already.
		p.waitFor(fmt.Sprintf(`document.getElementById("before").hidden && (document.getElementById("status").className === "bad" || document.getElementById("status").textContent !== %q)`, prev), 15*time.Second)
		text = p.status()
		shot("replaced")
	}
	if f := os.Getenv("PAIR_RECV_FILE"); f != "" && kind == "ok" {
		stop := make(chan struct{})
		mem := make(chan [2]float64, 1)
		go func() { b, pk := p.peakGrowth(stop); mem <- [2]float64{b, pk} }()
		var res struct{ SHA256 string }
		json.Unmarshal(device("--file", f, "--json"), &res)
		p.waitFor(`!!document.querySelector("#files li[data-sha256]")`, 240*time.Second)
		time.Sleep(500 * time.Millisecond) // the file put together: one more sample
		close(stop)
		m := <-mem
		fmt.Printf("PAGE_SHA<%s>\nSEND_SHA<%s>\nBASE_MB<%.0f>\nGROWTH_MB<%.1f>\n", p.eval(`document.querySelector("#files li[data-sha256]").dataset.sha256`), res.SHA256, m[0], m[1]-m[0])
		shot("received")
		if dir := os.Getenv("PAIR_SAVE_DIR"); dir != "" {
			// The person taps Save: the file the browser writes is the one sent.
			p.call("Browser.setDownloadBehavior", map[string]any{"behavior": "allow", "downloadPath": dir})
			p.eval(`document.querySelector("#files li[data-sha256] a").click(); "saving"`)
			fmt.Printf("SAVED_SHA<%s>\n", savedSum(t, filepath.Join(dir, filepath.Base(f))))
		}
		p.eval(`[...document.querySelectorAll("#files li[data-sha256] button")].find(b => b.textContent === "Dismiss").click(); "dismissed"`)
		time.Sleep(time.Second)
		fmt.Printf("SPOOLED_AFTER<%s>\n", p.eval(`new Promise(r => { const o = indexedDB.open("pairing"); o.onsuccess = () => { const c = o.result.transaction("chunks").objectStore("chunks").count(); c.onsuccess = () => r(c.result); }; })`))
	}
	if f := os.Getenv("PAIR_SEND_FILE"); f != "" && kind == "ok" {
		stop := make(chan struct{})
		mem := make(chan [2]float64, 1)
		go func() { b, pk := p.peakGrowth(stop); mem <- [2]float64{b, pk} }()
		p.pick(f)
		p.waitFor(`!!document.querySelector("#files li[data-dir=out][data-state]")`, 240*time.Second)
		close(stop)
		m := <-mem
		fmt.Printf("FILE_STATE<%s>\nGROWTH_UP_MB<%.1f>\n", p.eval(`document.querySelector("#files li[data-dir=out]").dataset.state + ":" + document.querySelector("#files li[data-dir=out] small").textContent`), m[1]-m[0])
		shot("sent")
	}
	if dir := os.Getenv("PAIR_SYNC"); dir != "" && kind == "ok" {
		os.WriteFile(filepath.Join(dir, "paired"), nil, 0o644)
		p.waitFor(`document.getElementById("status").textContent.includes("no longer paired")`, 30*time.Second)
		text = p.status()
		fmt.Printf("UNPAIRED<%s>\n", text)
		shot("unpaired")
	}
	p.close()
	fmt.Printf("STATUS<%s>STATUS\n", text)
}

// savedSum waits for the browser to finish saving path (its partial
// download is another name until then) and returns its SHA-256.
func savedSum(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			if part, _ := filepath.Glob(path + "*.crdownload"); len(part) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the browser never saved %s", path)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// devtools connects to the DevTools endpoint of the Chromium on port
// (up to 15 s after its start): its page target whose URL holds urlPart.
func devtools(port int, urlPart string) (*websocket.Conn, error) {
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return nil, errors.New("no DevTools endpoint")
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/json", port))
		if err != nil {
			continue
		}
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		json.NewDecoder(resp.Body).Decode(&targets)
		resp.Body.Close()
		for _, tg := range targets {
			if tg.Type == "page" && strings.Contains(tg.URL, urlPart) {
				return websocket.Dial(tg.WebSocketDebuggerURL, "", "http://127.0.0.1/")
			}
		}
	}
}
