package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/lanpairing/pairing/internal/lantest"
)

const chromium = "/usr/lib/chromium/chromium"

func requireChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs chromium (apt-get install chromium; 'make test' does it)")
		}
		t.Skip("needs chromium")
	}
}

// browse opens url in headless Chromium inside h (profile dir kept by
// the caller), waits for the page's final status and returns it; with
// message it then sends that message from the page.
func browse(t *testing.T, h *lantest.Host, url, profile, message string) string {
	t.Helper()
	status, _ := browseTimed(t, h, url, profile, message)
	return status
}

// browseTimed is browse, also returning the page's own time from
// navigation start to paired (0 when it did not pair).
func browseTimed(t *testing.T, h *lantest.Host, url, profile, message string, env ...string) (string, float64) {
	t.Helper()
	out := h.RunTest(t, "TestHelperBrowser", append([]string{"PAIR_URL=" + url, "PAIR_PROFILE=" + profile, "PAIR_MESSAGE=" + message}, env...)...)
	i := strings.Index(out, "STATUS<")
	if i < 0 {
		t.Fatalf("no status from the page:\n%s", out)
	}
	var ms float64
	if j := strings.Index(out, "PAIRED_MS<"); j >= 0 {
		fmt.Sscanf(out[j+10:], "%g", &ms)
	}
	if j := strings.Index(out, "MARKS<"); j >= 0 {
		t.Logf("page phases (ms since navigation): %s", out[j+6:j+strings.Index(out[j:], ">")])
	}
	return out[i+7 : i+strings.Index(out[i:], ">STATUS")], ms
}

func TestBrowserPairs(t *testing.T) {
	requireChromium(t)
	a, b := twoHosts(t)
	profile := t.TempDir()
	w := a.qr()
	status := browse(t, b.Host, w.URL, profile, "hello from the browser")
	t.Logf("page: %s", status)
	if !strings.HasPrefix(status, "Paired. This phone now stays paired with a") {
		t.Fatalf("page status %q", status)
	}
	ps := a.peers()
	if len(ps) != 1 || ps[0].Kind != "browser" || ps[0].Name != "test phone" {
		t.Fatalf("a's peers: %+v", ps)
	}
	lantest.Eventually(t, 3*time.Second, func() error {
		if items := a.inbox(); len(items) != 1 || items[0].Text != "hello from the browser" {
			return errorf("a's inbox: %+v", items)
		}
		return nil
	})
	// The same browser profile again, with the window closed: the same
	// paired device (its certificate is in IndexedDB).
	out := b.RunTest(t, "TestHelperBrowser", "PAIR_URL="+w.URL, "PAIR_PROFILE="+profile, "PAIR_BIN="+a.bin, "PAIR_SOCKET="+a.socket, "PAIR_PEER=test phone", "PAIR_RECV_TEXT=hi page")
	if !strings.Contains(out, "STATUS<Connected again. This phone stays paired.>STATUS") || !strings.Contains(out, "TITLE<Connected to a>") || !strings.Contains(out, "PAGE_GOT_MESSAGE") || strings.Contains(out, "NAME_GUESS") {
		t.Fatalf("reload and a message to the page:\n%s", out)
	}
	if again := a.peers(); len(again) != 1 || again[0].Fingerprint != ps[0].Fingerprint {
		t.Fatalf("after reload: %+v", again)
	}
	// A fresh browser with the old QR code: the window is closed.
	if status := browse(t, b.Host, w.URL, t.TempDir(), ""); !strings.Contains(status, "Another device just paired with this code") {
		t.Fatalf("closed window: %q", status)
	}
	// Link and code: the page asks for the code shown on the device.
	w2 := a.qr("--link")
	if status, _ := browseTimed(t, b.Host, w2.LinkURL, t.TempDir(), "", "PAIR_CODE="+w2.Code, "PAIR_NAME=second"); !strings.HasPrefix(status, "Paired.") {
		t.Fatalf("link and code: %q", status)
	}
	if ps := a.peers(); len(ps) != 2 {
		t.Fatalf("after pairing by code: %+v", ps)
	}
	// A wrong secret in the fragment.
	w2 = a.qr()
	s := w2.URL[strings.Index(w2.URL, "&s=")+3:]
	s = s[:strings.Index(s, "&")]
	bad := strings.Replace(w2.URL, "&s="+s, "&s=AAAAAAAAAAAAAAAAAAAAAA", 1)
	if status := browse(t, b.Host, bad, t.TempDir(), ""); !strings.Contains(status, "not the one the device shows now") {
		t.Fatalf("wrong secret: %q", status)
	}
	// Another device's fingerprint in the QR code: the page refuses the answer.
	other := strings.Replace(w2.URL, "fp=", "fp=A", 1)
	other = other[:strings.Index(other, "fp=")+3] + strings.Repeat("B", 43) + other[strings.Index(other, "fp=")+3+44:]
	if status := browse(t, b.Host, other, t.TempDir(), ""); !strings.Contains(status, "This is not the device in the QR code") {
		t.Fatalf("tampered fingerprint: %q", status)
	}
	if ps := a.peers(); len(ps) != 2 {
		t.Fatalf("a failed attempt paired something: %+v", ps)
	}
}

// TestHelperBrowser runs inside a host: headless Chromium at phone size
// on PAIR_URL, driven over the DevTools protocol through what a person
// does: it types PAIR_NAME (default "test phone") when the page asks for
// a name, PAIR_CODE when it asks for a code, then optionally
//   - PAIR_MESSAGE: sends it, and waits until it shows as delivered;
//   - PAIR_FILES: picks these files (comma-separated) and waits for each
//     to be done or failed (FILES<state;…>), or with PAIR_CLOSE_HALF
//     closes the browser once the first is a third sent (CLOSED);
//   - with PAIR_BIN, PAIR_SOCKET and PAIR_PEER, the device sends to the
//     open page: PAIR_RECV_TEXT (PAGE_GOT_MESSAGE), PAIR_RECV_FILE
//     (PAGE_SHA<…> and SEND_SHA<…>);
//   - PAIR_SYNC: a directory for a dance with the outer test: it writes
//     "paired", waits for "stopped" (the daemon is stopped), sees the
//     page say the connection is lost, writes "lost", waits for
//     "started", taps Reconnect and prints RECONNECTED once connected;
//   - PAIR_SHOTS: a directory for screenshots of the states it reaches.
//
// It prints STATUS<…>STATUS, TITLE<…>, PAIRED_MS<…>.
func TestHelperBrowser(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestBrowserPairs")
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--remote-debugging-port=9222", "--remote-allow-origins=*", "--window-size=390,844",
		"--user-agent=Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
		"--user-data-dir="+os.Getenv("PAIR_PROFILE"), os.Getenv("PAIR_URL"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	ws, err := devtools(9222, "/p")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	id := 0
	call := func(method string, params map[string]any) json.RawMessage {
		id++
		websocket.JSON.Send(ws, map[string]any{"id": id, "method": method, "params": params})
		for {
			var resp struct {
				ID     int             `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			if err := websocket.JSON.Receive(ws, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.ID == id {
				return resp.Result
			}
		}
	}
	eval := func(expr string) string {
		var r struct {
			Result struct {
				Value any `json:"value"`
			} `json:"result"`
		}
		json.Unmarshal(call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r)
		return fmt.Sprint(r.Result.Value)
	}
	statusText := func() string { return eval(`document.getElementById("status").textContent`) }
	waitFor := func(cond string, d time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(d); eval(cond) != "true"; {
			if time.Now().After(deadline) {
				t.Fatalf("page never got to %s; status %q", cond, statusText())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	shot := func(name string) {
		dir := os.Getenv("PAIR_SHOTS")
		if dir == "" {
			return
		}
		var shot struct{ Data []byte }
		json.Unmarshal(call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}), &shot)
		if err := os.WriteFile(filepath.Join(dir, name+".png"), shot.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	settled := func() string {
		var status string
		for deadline := time.Now().Add(15 * time.Second); ; {
			status = eval(`(function(){const s=document.getElementById("status"); if (!document.getElementById("nameform").hidden) return "name|ask"; return s.textContent + "|" + s.className})()`)
			if strings.HasSuffix(status, "|ok") || strings.HasSuffix(status, "|bad") || strings.HasSuffix(status, "|ask") || time.Now().After(deadline) {
				return status
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if code := os.Getenv("PAIR_CODE"); code != "" {
		waitFor(`!document.getElementById("codeform").hidden`, 10*time.Second)
		eval(fmt.Sprintf(`document.getElementById("code").value = %q; document.getElementById("codeform").requestSubmit(); "typed"`, code))
	}
	status := settled()
	if strings.HasSuffix(status, "|ask") {
		name := os.Getenv("PAIR_NAME")
		if name == "" {
			name = "test phone"
		}
		fmt.Printf("NAME_GUESS<%s>\n", eval(`document.getElementById("name").value`))
		shot("name")
		eval(fmt.Sprintf(`document.getElementById("name").value = %q; document.getElementById("nameform").requestSubmit(); "named"`, name))
		status = settled()
	}
	ok := strings.HasSuffix(status, "|ok")
	if ok {
		shot("paired")
	}
	device := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(os.Getenv("PAIR_BIN"), append([]string{"send", "--socket", os.Getenv("PAIR_SOCKET"), os.Getenv("PAIR_PEER")}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pairing send to the page: %v %s", err, out)
		}
		return out
	}
	if m := os.Getenv("PAIR_MESSAGE"); m != "" && ok {
		eval(fmt.Sprintf(`document.getElementById("msg").value = %q; document.getElementById("msgform").requestSubmit(); "sent"`, m))
		waitFor(`[...document.querySelectorAll("#history li.me")].some(li => (li.dataset.state||"").startsWith("delivered"))`, 10*time.Second)
		fmt.Println("DELIVERED")
	}
	if m := os.Getenv("PAIR_RECV_TEXT"); m != "" && ok {
		device(m)
		waitFor(fmt.Sprintf(`[...document.querySelectorAll("#history li:not(.me)")].some(li => li.firstChild.textContent === %q)`, m), 10*time.Second)
		fmt.Println("PAGE_GOT_MESSAGE")
	}
	if f := os.Getenv("PAIR_RECV_FILE"); f != "" && ok {
		var res struct {
			SHA256     string
			DurationMS float64 `json:"duration_ms"`
		}
		json.Unmarshal(device("--file", f, "--json"), &res)
		fmt.Printf("DOWNLOAD_MS<%.1f>\n", res.DurationMS)
		waitFor(`!!document.querySelector("#files li[data-sha256]")`, 30*time.Second)
		fmt.Printf("PAGE_SHA<%s>\nSEND_SHA<%s>\n", eval(`document.querySelector("#files li[data-sha256]").dataset.sha256`), res.SHA256)
		shot("received")
	}
	if files := os.Getenv("PAIR_FILES"); files != "" && ok {
		var doc struct{ Root struct{ NodeID int } }
		json.Unmarshal(call("DOM.getDocument", nil), &doc)
		var node struct{ NodeID int }
		json.Unmarshal(call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#pick"}), &node)
		picked := time.Now()
		call("DOM.setFileInputFiles", map[string]any{"nodeId": node.NodeID, "files": strings.Split(files, ",")})
		n := len(strings.Split(files, ","))
		if os.Getenv("PAIR_CLOSE_HALF") != "" {
			waitFor(`(function(){const b=document.querySelector("#files li[data-dir=out] progress"); return !!b && b.value > b.max/3})()`, 30*time.Second)
			cmd.Process.Kill()
			cmd.Wait()
			killed = true
			fmt.Println("CLOSED")
			return
		}
		waitFor(fmt.Sprintf(`document.querySelectorAll("#files li[data-dir=out][data-state]").length >= %d`, n), 60*time.Second)
		fmt.Printf("UPLOAD_MS<%.1f>\n", float64(time.Since(picked).Microseconds())/1000)
		fmt.Printf("FILES<%s>\n", eval(`[...document.querySelectorAll("#files li[data-dir=out]")].reverse().map(li => li.dataset.state + ":" + li.querySelector("small").textContent).join(";")`))
		shot("files")
	}
	if dir := os.Getenv("PAIR_SYNC"); dir != "" && ok {
		touch := func(name string) { os.WriteFile(filepath.Join(dir, name), nil, 0o644) }
		await := func(name string) {
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the outer test never wrote %s", name)
				}
			}
		}
		touch("paired")
		await("stopped")
		waitFor(`document.getElementById("status").textContent.startsWith("Connection lost.") && !document.getElementById("retry").hidden`, 20*time.Second)
		shot("lost")
		fmt.Printf("LOST<%s>\n", eval(`document.getElementById("retry").textContent`))
		touch("lost")
		await("started")
		for deadline := time.Now().Add(20 * time.Second); ; {
			eval(`document.getElementById("retry").hidden || document.getElementById("retry").click(); "tapped"`)
			time.Sleep(300 * time.Millisecond)
			if eval(`document.getElementById("status").className`) == "ok" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no reconnect: %q", statusText())
			}
		}
		fmt.Println("RECONNECTED")
		status = statusText() + "|ok"
		shot("reconnected")
	}
	shot("final")
	title, pairedMs := eval(`document.getElementById("title").textContent`), eval(`document.body.dataset.pairedMs || "0"`)
	// Closed as a person closes it, so the profile is written (the
	// answer may not come: the socket closes).
	id++
	websocket.JSON.Send(ws, map[string]any{"id": id, "method": "Browser.close"})
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	killed = true
	text, _, _ := strings.Cut(status, "|")
	fmt.Printf("STATUS<%s>STATUS\n", text)
	fmt.Printf("TITLE<%s>\n", title)
	fmt.Printf("PAIRED_MS<%s>\n", pairedMs)
}
