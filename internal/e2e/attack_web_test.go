package e2e

// Attacks on the page's plain-HTTP surface of a real `pairing serve`
// (issue 22 item 6): a page of another site open in a browser on the LAN,
// DNS rebinding, framing; and the page's own CSP in both browser engines.
// Browser sides run as helper tests inside the phone's namespace.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/net/websocket"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// evilPage is another site's page: it makes a real WebRTC offer and
// sends it to the daemon every way a page can without the daemon's
// consent (no-cors fetches, a CORS fetch, a text/plain form shaped as
// JSON, a beacon), and frames the daemon's page.
const evilPage = `<!doctype html><html><body><iframe name="sink"></iframe><iframe id="framed"></iframe><script>
const D = %q;
const out = {};
async function offer() {
  const pc = new RTCPeerConnection(); pc.createDataChannel("x");
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === "complete") r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); setTimeout(r, 3000); });
  return JSON.stringify({ sdp: pc.localDescription.sdp });
}
async function attempt(name, f) { try { const r = await f(); out[name] = r.type + ":" + r.status; } catch (e) { out[name] = "error:" + e.name; } }
(async () => {
  document.getElementById("framed").src = D + "/p";
  const body = await offer();
  await attempt("nocors_text", async () => fetch(D + "/p/offer", { method: "POST", mode: "no-cors", body, headers: { "Content-Type": "text/plain" } }));
  await attempt("nocors_json", async () => fetch(D + "/p/offer", { method: "POST", mode: "no-cors", body: await offer(), headers: { "Content-Type": "application/json" } }));
  await attempt("cors_json", async () => fetch(D + "/p/offer", { method: "POST", body: await offer(), headers: { "Content-Type": "application/json" } }));
  await attempt("cors_text", async () => fetch(D + "/p/offer", { method: "POST", body: await offer(), headers: { "Content-Type": "text/plain" } }));
  out.beacon = String(navigator.sendBeacon(D + "/p/offer", new Blob([await offer()], { type: "text/plain" })));
  const f = document.createElement("form"); f.method = "POST"; f.action = D + "/p/offer"; f.enctype = "text/plain"; f.target = "sink";
  const o = JSON.parse(await offer()); const i = document.createElement("input");
  i.name = '{"sdp":' + JSON.stringify(o.sdp) + ',"x":"'; i.value = '"}'; f.append(i); document.body.append(f); f.submit();
  out.form = "sent";
  window.__done = JSON.stringify(out);
})().catch(e => { window.__done = "failed: " + e + " " + JSON.stringify(out); });
</script></body></html>`

// TestAttackWebCrossSite: while a pairing window is open, a page of
// another site (served from the phone's host, another port) in a real
// Chromium sends offers to the daemon. None is answered: no connection,
// no pending slot, no rate allowance used (more refused requests than the
// per-source allowance of 20 a minute, from the phone's own address);
// its frame of the page is blocked; and the phone pairs right after.
func TestAttackWebCrossSite(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	requireChromium(t)
	_, ns := segmentOf(t, rootBin(t), true, "a", "b")
	a, b := ns[0], ns[1]
	a.serve()
	w := a.qr()
	daemon := "http://10.1.0.1:" + strconv.Itoa(a.port())
	out := b.RunTest(t, "TestHelperWebCrossSite", "WEB_DAEMON="+daemon)
	t.Logf("evil page: %s; frame: %s", between(out, "RESULTS<", ">RESULTS"), between(out, "FRAME<", ">FRAME"))
	if f := between(out, "FRAME<", ">FRAME"); !strings.HasPrefix(f, "chrome-error:") {
		t.Errorf("the page loaded in another site's frame: %q", f)
	}
	// The raw forms: 25 cross-site offers from b's address, more than its
	// allowance.
	out = b.RunTest(t, "TestHelperWebRequests", "WEB_DAEMON="+daemon, "WEB_MODE=flood")
	if r := result(t, out); r["403"] != 25 {
		t.Errorf("cross-site offers: %v, want 25 refused (403)", r)
	}
	// Each request was refused by the guard before any handler: nothing
	// was answered, no connection made.
	lantest.Eventually(t, 10*time.Second, func() error {
		if n := strings.Count(a.daemon.Stderr(), "web: request refused"); n < 30 {
			return fmt.Errorf("%d refusals logged", n)
		}
		return nil
	})
	if log := a.daemon.Stderr(); strings.Contains(log, "browser: offer") {
		t.Errorf("an offer reached the offer handler:\n%s", grepLines(log, "browser: offer"))
	}
	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Connections) != 0 {
		t.Errorf("connections after the attack: %+v", st.Connections)
	}
	// The phone, from the same address, pairs at once.
	if status := browse(t, b.Host, w.URL, t.TempDir(), ""); !strings.HasPrefix(status, "Paired.") {
		t.Fatalf("the phone after the attack: %q", status)
	}
}

// TestAttackWebRebinding: requests naming another host (a rebinding name
// in any spelling, another host's address, an own address with a wrong
// port) get 421 on the page and the offer; own addresses (IPv4, the
// link-local IPv6 with its zone as a browser sends it) and the mDNS name
// are served, with the security headers; the self-ping's confirm path
// answers whatever the Host. Origin null, a cross-site Sec-Fetch-Site and
// text/plain are refused; application/json with a charset is answered.
func TestAttackWebRebinding(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	_, ns := segmentOf(t, rootBin(t), true, "a", "b")
	a, b := ns[0], ns[1]
	a.serve()
	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	fp, err := ident.Parse(st.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	ll := regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/`).FindStringSubmatch(a.Must("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"))
	if ll == nil {
		t.Fatal("no link-local address on a")
	}
	a.qr()
	out := b.RunTest(t, "TestHelperWebRequests", "WEB_DAEMON=http://10.1.0.1:"+strconv.Itoa(st.Port), "WEB_MODE=hosts",
		"WEB_LINKLOCAL="+ll[1], "WEB_NAME="+discovery.MDNSHost(fp))
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "BAD ") {
			t.Error(line)
		}
	}
	if !strings.Contains(out, "CHECKED") {
		t.Fatalf("helper:\n%s", out)
	}
}

// TestWebPageCSP: the page under its own CSP in Chromium and Firefox
// gets to the name prompt (scripts, style, the offer fetch and WebRTC
// all allowed) with no CSP violation and its stylesheet applied; its
// worker runs libsodium's WebAssembly, which seals and hashes as noble
// and Go do (pageCrypto).
func TestWebPageCSP(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	requireChromium(t)
	_, ns := segmentOf(t, rootBin(t), true, "a", "b")
	a, b := ns[0], ns[1]
	a.serve()
	out := b.RunTest(t, "TestHelperWebCSPChromium", "PAIR_URL="+a.qr().URL, "PAIR_PROFILE="+t.TempDir())
	if v := between(out, "VIOLATIONS<", ">VIOLATIONS"); v != "[]" || !strings.Contains(out, "STYLED<544px>") {
		t.Errorf("chromium:\n%s", out)
	}
	checkPageCrypto(t, "chromium", out)
	if _, err := os.Stat(firefox); err != nil {
		t.Log("no firefox-esr: Chromium only")
		return
	}
	out = b.RunTest(t, "TestHelperWebCSPFirefox", "PAIR_URL="+a.qr().URL, "PAIR_PROFILE="+t.TempDir())
	if v := between(out, "VIOLATIONS<", ">VIOLATIONS"); v != "[]" || !strings.Contains(out, "STYLED<544px>") {
		t.Errorf("firefox:\n%s", out)
	}
	checkPageCrypto(t, "firefox", out)
}

// cryptoSizes are the plain sizes pageCrypto seals and hashes: empty,
// around ChaCha20's 64-byte block, and a whole chunk of the bulk path.
var cryptoSizes = []int{0, 1, 63, 64, 65, 4096, rtc.BulkChunk}

// cryptoBytes are pageCrypto's test bytes of size n: its key, nonce,
// additional data and plain text, made the same way in Go.
func cryptoBytes(n int) (key, nonce, aad, plain []byte) {
	key, nonce, plain = make([]byte, 32), make([]byte, 12), make([]byte, n)
	for i := range key {
		key[i] = byte(i + n)
	}
	for i := range nonce {
		nonce[i] = byte(7*i + 1)
	}
	for i := range plain {
		plain[i] = byte(i*31 + n)
	}
	return key, nonce, []byte("pairing bulk v1 test" + strconv.Itoa(n)), plain
}

// pageCrypto, run in the page (under its CSP), checks its two crypto
// engines against each other (noble's JavaScript and libsodium's
// WebAssembly: the same sealed bytes, each opening the other's, a
// flipped bit refused by both, the same SHA-256 fed in parts and
// cloned), starts the page's worker and notes the engine it says it
// runs, and sets window.__crypto to {bad, engine, seals, sums}: the
// SHA-256 of each size's sealed bytes and of its plain bytes (libsodium's
// hash), for Go to check.
const pageCrypto = `window.__crypto = ""; (async () => {
  const { load } = await import("/p/sodium.js");
  const { crypt } = await import("/p/transfer.js");
  const { sha256 } = await import("/p/noble/sha2.js");
  const s = await load(), bad = [], seals = [], sums = [], enc = new TextEncoder();
  const hex = b => Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
  for (const n of SIZES) {
    const key = new Uint8Array(32).map((_, i) => i + n), nonce = new Uint8Array(12).map((_, i) => 7 * i + 1);
    const aad = enc.encode("pairing bulk v1 test" + n), plain = new Uint8Array(n).map((_, i) => (i * 31 + n) & 255);
    const copy = () => { const b = new ArrayBuffer(n + 32); new Uint8Array(b).set(plain); return b; };
    const byNoble = new ArrayBuffer(n + 32), bySodium = new ArrayBuffer(n + 32);
    crypt({ t: "seal", key, nonce, aad, buf: copy(), n, out: byNoble });
    if (!s.crypt({ t: "seal", key, nonce, aad, buf: copy(), n, out: bySodium })) bad.push("sodium declined " + n);
    const sealed = hex(new Uint8Array(byNoble, 0, n + 16));
    if (hex(new Uint8Array(bySodium, 0, n + 16)) !== sealed) bad.push("the engines seal " + n + " bytes differently");
    seals.push(hex(sha256(new Uint8Array(byNoble, 0, n + 16))));
    const flipped = new ArrayBuffer(n + 32);
    new Uint8Array(flipped).set(new Uint8Array(byNoble, 0, n + 16));
    new Uint8Array(flipped)[n >> 1] ^= 1;
    for (const [name, f] of [["noble", crypt], ["sodium", s.crypt]]) {
      try { f({ t: "open", key, nonce, aad, buf: flipped, n: n + 16 }); bad.push(name + " opened a flipped bit at " + n); } catch { /* refused */ }
    }
    crypt({ t: "open", key, nonce, aad, buf: bySodium, n: n + 16 });
    s.crypt({ t: "open", key, nonce, aad, buf: byNoble, n: n + 16 });
    if (hex(new Uint8Array(bySodium, 0, n)) !== hex(plain) || hex(new Uint8Array(byNoble, 0, n)) !== hex(plain)) bad.push("an engine did not open the other's " + n + " bytes");
    const hn = sha256.create(), hs = s.sha256.create();
    for (const part of [plain.subarray(0, n >> 2), plain.subarray(n >> 2, n - 1), plain.subarray(n - 1)]) { hn.update(part); hs.update(part); }
    const mid = hex(hs.clone().digest());
    if (mid !== hex(hn.clone().digest())) bad.push("the engines hash " + n + " bytes differently");
    hs.update(plain); hn.update(plain);
    if (hex(hs.digest()) !== hex(hn.digest())) bad.push("the engines' hashes part after a clone at " + n);
    sums.push(mid);
  }
  const engine = await new Promise(resolve => {
    const w = new Worker("/p/worker.js", { type: "module" });
    w.onmessage = e => { if (e.data.t === "ready") { resolve(e.data.engine); w.terminate(); } };
    w.onerror = () => resolve("error");
    setTimeout(() => resolve("no answer"), 10000);
  });
  window.__crypto = JSON.stringify({ bad, engine, seals, sums });
})().catch(e => { window.__crypto = JSON.stringify({ bad: ["threw: " + e] }); });`

// pageCryptoJS is pageCrypto with its sizes.
func pageCryptoJS() string {
	sizes, _ := json.Marshal(cryptoSizes)
	return strings.Replace(pageCrypto, "SIZES", string(sizes), 1)
}

// checkPageCrypto checks a helper's CRYPTO<…>: no complaint, the worker
// on libsodium, and the page's seals and hashes those of Go's
// ChaCha20-Poly1305 and SHA-256 (what the daemon runs).
func checkPageCrypto(t *testing.T, browser, out string) {
	var got struct {
		Bad         []string
		Engine      string
		Seals, Sums []string
	}
	if err := json.Unmarshal([]byte(between(out, "CRYPTO<", ">CRYPTO")), &got); err != nil {
		t.Fatalf("%s: no crypto result: %v\n%s", browser, err, out)
	}
	if len(got.Bad) > 0 || got.Engine != "sodium" || len(got.Seals) != len(cryptoSizes) || len(got.Sums) != len(cryptoSizes) {
		t.Fatalf("%s: %+v", browser, got)
	}
	for i, n := range cryptoSizes {
		key, nonce, aad, plain := cryptoBytes(n)
		c, err := chacha20poly1305.New(key)
		if err != nil {
			t.Fatal(err)
		}
		seal, sum := sha256.Sum256(c.Seal(nil, nonce, plain, aad)), sha256.Sum256(plain)
		if got.Seals[i] != hex.EncodeToString(seal[:]) || got.Sums[i] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: %d bytes sealed or hashed unlike Go", browser, n)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// cspWatch, run before the page's own scripts, records every CSP
// violation of the document.
const cspWatch = `window.__csp = []; document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`

// pageChecks are what the CSP helpers print once the page asks for a
// name: the violations and the body's max-width (34rem = 544px, from
// app.css).
const pageChecks = `JSON.stringify(window.__csp)`
const pageStyled = `getComputedStyle(document.body).maxWidth`

func TestHelperWebCrossSite(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the phone's host; see TestAttackWebCrossSite")
	}
	ln, err := net.Listen("tcp", "10.1.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf(evilPage, os.Getenv("WEB_DAEMON"))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	profile, err := os.MkdirTemp("", "evil")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) }) // after Chromium is gone: cleanups run last first
	c := chromiumAt(t, profile, "http://"+ln.Addr().String()+"/")
	res := c.waitValue(`window.__done || ""`, 40*time.Second)
	time.Sleep(time.Second) // the form and the beacon are on their way
	// The framed page: a blocked frame holds the browser's error page,
	// not the page's title.
	var targets struct {
		TargetInfos []struct{ TargetID, Type, URL string }
	}
	json.Unmarshal(c.call("Target.getTargets", nil), &targets)
	for _, tg := range targets.TargetInfos {
		if tg.Type != "iframe" || !strings.HasSuffix(tg.URL, "/p") {
			continue
		}
		var att struct{ SessionID string }
		json.Unmarshal(c.call("Target.attachToTarget", map[string]any{"targetId": tg.TargetID, "flatten": true}), &att)
		c.session = att.SessionID
		fmt.Printf("FRAME<%s %s>FRAME\n", c.eval("location.href"), c.eval("document.title"))
		c.session = ""
	}
	fmt.Printf("RESULTS<%s>RESULTS\n", res)
}

func TestHelperWebCSPChromium(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the phone's host; see TestWebPageCSP")
	}
	c := chromiumAt(t, os.Getenv("PAIR_PROFILE"), os.Getenv("PAIR_URL"))
	c.waitValue(`document.getElementById("nameform").hidden ? "" : "asked"`, 20*time.Second)
	c.eval(pageCryptoJS())
	crypto := c.waitValue(`window.__crypto`, 30*time.Second)
	fmt.Printf("VIOLATIONS<%s>VIOLATIONS\nSTYLED<%s>\nCRYPTO<%s>CRYPTO\n", c.eval(pageChecks), c.eval(pageStyled), crypto)
}

// chrome is headless Chromium driven over the DevTools protocol.
type chrome struct {
	t       *testing.T
	ws      *websocket.Conn
	id      int
	session string // a flat session of a target (a frame) to talk to, or the page's
}

// chromiumAt starts Chromium on about:blank, installs cspWatch and
// navigates to url.
func chromiumAt(t *testing.T, profile, url string) *chrome {
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--remote-debugging-port=9224", "--remote-allow-origins=*", "--window-size=390,844", "--user-data-dir="+profile, "about:blank")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ws, err := devtools(9224, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &chrome{t: t, ws: ws}
	c.call("Page.enable", nil)
	c.call("Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": cspWatch})
	c.call("Page.navigate", map[string]any{"url": url})
	return c
}

func (c *chrome) call(method string, params map[string]any) json.RawMessage {
	c.t.Helper()
	c.id++
	msg := map[string]any{"id": c.id, "method": method, "params": params}
	if c.session != "" {
		msg["sessionId"] = c.session
	}
	websocket.JSON.Send(c.ws, msg)
	for {
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if err := websocket.JSON.Receive(c.ws, &resp); err != nil {
			c.t.Fatal(err)
		}
		if resp.ID == c.id {
			return resp.Result
		}
	}
}

func (c *chrome) eval(expr string) string {
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	json.Unmarshal(c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r)
	if r.Result.Value == nil {
		return ""
	}
	return fmt.Sprint(r.Result.Value)
}

// waitValue waits until expr is not empty and returns it.
func (c *chrome) waitValue(expr string, d time.Duration) string {
	c.t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if v := c.eval(expr); v != "" {
			return v
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("page never got to %s; at %s: %s", expr, c.eval("location.href"), c.eval("typeof out === \"undefined\" ? \"no out\" : JSON.stringify(out)"))
		}
	}
}

func TestHelperWebCSPFirefox(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the phone's host; see TestWebPageCSP")
	}
	call := startFirefox(t, os.Getenv("PAIR_PROFILE"), 9225)
	call("session.new", map[string]any{"capabilities": map[string]any{}})
	call("script.addPreloadScript", map[string]any{"functionDeclaration": "() => { " + cspWatch + " }"})
	var tree struct{ Contexts []struct{ Context string } }
	json.Unmarshal(call("browsingContext.getTree", map[string]any{}), &tree)
	ctx := tree.Contexts[0].Context
	call("browsingContext.navigate", map[string]any{"context": ctx, "url": os.Getenv("PAIR_URL"), "wait": "complete"})
	eval := func(expr string) string {
		var r struct {
			Result struct{ Value any }
		}
		json.Unmarshal(call("script.evaluate", map[string]any{"expression": expr, "target": map[string]any{"context": ctx}, "awaitPromise": false}), &r)
		return fmt.Sprint(r.Result.Value)
	}
	for deadline := time.Now().Add(20 * time.Second); eval(`document.getElementById("nameform").hidden`) != "false"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("page never asked for a name; status %q", eval(`document.getElementById("status").textContent`))
		}
	}
	eval(pageCryptoJS())
	crypto := ""
	for deadline := time.Now().Add(30 * time.Second); crypto == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		crypto = eval(`window.__crypto`)
	}
	fmt.Printf("VIOLATIONS<%s>VIOLATIONS\nSTYLED<%s>\nCRYPTO<%s>CRYPTO\n", eval(pageChecks), eval(pageStyled), crypto)
}

// raw sends one request with exactly these headers over a new connection
// to addr (an attacker's tool, or a browser after a rebinding, sends any
// Host) and returns the status, the refusal's reason and the headers.
func raw(addr, method, path, host string, hdr map[string]string, body string) (int, string, http.Header, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, host, len(body))
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(c, b.String()); err != nil {
		return 0, "", nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	var er pairing.ErrorResponse
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	json.Unmarshal(rb, &er)
	return resp.StatusCode, er.Reason, resp.Header, nil
}

// TestHelperWebRequests sends raw requests to WEB_DAEMON from the
// phone's host: WEB_MODE=flood, 25 cross-site offers (RESULT by status);
// WEB_MODE=hosts, the Host and Origin forms of TestAttackWebRebinding
// (BAD lines for every wrong answer, then CHECKED).
func TestHelperWebRequests(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the phone's host; see TestAttackWebRebinding")
	}
	base := os.Getenv("WEB_DAEMON")
	addr := strings.TrimPrefix(base, "http://")
	ap := netip.MustParseAddrPort(addr)
	port := strconv.Itoa(int(ap.Port()))
	body := `{"sdp":"v=0\r\n"}`
	if os.Getenv("WEB_MODE") == "flood" {
		counts := map[string]int{}
		for i := range 25 {
			hdr := map[string]string{"Content-Type": "text/plain", "Origin": "http://10.1.0.2:8080"}
			if i%2 == 1 {
				hdr = map[string]string{"Content-Type": "application/json", "Origin": "null"}
			}
			code, _, _, err := raw(addr, "POST", "/p/offer", addr, hdr, body)
			if err != nil {
				counts["error"]++
				continue
			}
			counts[strconv.Itoa(code)]++
		}
		printResult(t, counts)
		return
	}
	bad := func(f string, a ...any) { fmt.Printf("BAD "+f+"\n", a...) }
	asJSON := map[string]string{"Content-Type": "application/json"}
	ll := os.Getenv("WEB_LINKLOCAL")
	llAddr := "[" + ll + "%eth0]:" + port
	name := strings.TrimSuffix(os.Getenv("WEB_NAME"), ".")
	// Misdirected: every form of another host's name or address.
	for _, host := range []string{"attacker.example:" + port, "ATTACKER.EXAMPLE:" + port, "attacker.example.:" + port, "attacker.example",
		"[2001:db8::1]:" + port, "10.1.0.2:" + port, "10.1.0.1:1", "[fe80::1%25eth0]:" + port, name + ".attacker.example:" + port} {
		for _, c := range []struct{ method, path string }{{"GET", "/p"}, {"GET", "/p/app.js"}, {"POST", "/p/offer"}} {
			code, reason, _, err := raw(addr, c.method, c.path, host, asJSON, body)
			if err != nil || code != http.StatusMisdirectedRequest || reason != "misdirected" {
				bad("%s %s Host %s: %d %s %v, want 421 misdirected", c.method, c.path, host, code, reason, err)
			}
		}
	}
	// Own: the address dialled, the link-local one with its zone (as
	// %25zone, as Firefox writes it, or without), the mDNS name in any case.
	own := []struct{ dial, host string }{{addr, addr}, {addr, "10.1.0.1"}, {llAddr, "[" + ll + "%25eth0]:" + port}, {llAddr, "[" + ll + "]:" + port},
		{addr, name + ":" + port}, {addr, strings.ToUpper(name) + ":" + port}, {addr, name + ".:" + port}}
	for _, o := range own {
		for _, path := range []string{"/p", "/p/app.js", "/p/app.css"} {
			code, _, h, err := raw(o.dial, "GET", path, o.host, nil, "")
			if err != nil || code != 200 {
				bad("GET %s Host %s: %d %v", path, o.host, code, err)
				continue
			}
			if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") ||
				h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
				bad("GET %s Host %s: headers %v", path, o.host, h)
			}
		}
		// Passes the guard: the offer handler reads the body (a bad SDP).
		if code, reason, _, err := raw(o.dial, "POST", "/p/offer", o.host, asJSON, body); err != nil || code != 400 || reason != "bad_request" {
			bad("POST Host %s: %d %s %v, want the handler's 400 bad_request", o.host, code, reason, err)
		}
	}
	// The self-ping's path answers whatever the Host (here: a bad nonce).
	for _, host := range []string{"self", "probe", "attacker.example:" + port} {
		if code, reason, _, err := raw(addr, "GET", discovery.ConfirmPath+"?nonce=x&addr=10.1.0.1", host, nil, ""); err != nil || code != 400 || reason != "" {
			bad("confirm Host %s: %d %s %v", host, code, reason, err)
		}
	}
	// Origin and content type, with the own Host.
	for _, c := range []struct {
		hdr    map[string]string
		code   int
		reason string
	}{
		{map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, "cross_site"},
		{map[string]string{"Content-Type": "application/json", "Origin": "http://attacker.example:" + port}, 403, "cross_site"},
		{map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "cross_site"},
		{map[string]string{"Content-Type": "text/plain"}, 415, "content_type"},
		{map[string]string{"Content-Type": "text/plain", "Origin": base}, 415, "content_type"},
		{map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": base}, 400, "bad_request"},
		{map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}, 400, "bad_request"},
	} {
		if code, reason, _, err := raw(addr, "POST", "/p/offer", addr, c.hdr, body); err != nil || code != c.code || reason != c.reason {
			bad("POST %v: %d %s %v, want %d %s", c.hdr, code, reason, err, c.code, c.reason)
		}
	}
	fmt.Println("CHECKED")
}
