package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/lanpairing/pairing/internal/lan"
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
func browse(t *testing.T, h *lan.Host, url, profile, message string) string {
	t.Helper()
	status, _ := browseTimed(t, h, url, profile, message)
	return status
}

// browseTimed is browse, also returning the page's own time from
// navigation start to paired (0 when it did not pair).
func browseTimed(t *testing.T, h *lan.Host, url, profile, message string, env ...string) (string, float64) {
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
	if status != "Paired with “a”." {
		t.Fatalf("page status %q", status)
	}
	ps := a.peers()
	if len(ps) != 1 || ps[0].Kind != "browser" {
		t.Fatalf("a's peers: %+v", ps)
	}
	lan.Eventually(t, 3*time.Second, func() error {
		if items := a.inbox(); len(items) != 1 || items[0].Text != "hello from the browser" {
			return errorf("a's inbox: %+v", items)
		}
		return nil
	})
	// The same browser profile again, with the window closed: the same
	// paired device (its certificate is in IndexedDB).
	out := b.RunTest(t, "TestHelperBrowser", "PAIR_URL="+w.URL, "PAIR_PROFILE="+profile, "PAIR_BIN="+a.bin, "PAIR_SOCKET="+a.socket)
	if !strings.Contains(out, "STATUS<Paired with “a”.>STATUS") || !strings.Contains(out, "PAGE_GOT_MESSAGE") {
		t.Fatalf("reload and a message to the page:\n%s", out)
	}
	if again := a.peers(); len(again) != 1 || again[0].Fingerprint != ps[0].Fingerprint {
		t.Fatalf("after reload: %+v", again)
	}
	// A fresh browser with the old QR code: the window is closed.
	if status := browse(t, b.Host, w.URL, t.TempDir(), ""); !strings.Contains(status, "pairing window on the device is closed") {
		t.Fatalf("closed window: %q", status)
	}
	// Link and code: the page asks for the code shown on the device.
	w2 := a.qr("--link")
	if status, _ := browseTimed(t, b.Host, w2.LinkURL, t.TempDir(), "", "PAIR_CODE="+w2.Code); status != "Paired with “a”." {
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
	if status := browse(t, b.Host, bad, t.TempDir(), ""); !strings.Contains(status, "not the device's current one") {
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

// TestHelperBrowser runs inside a host: it starts Chromium on PAIR_URL,
// reads the page's status over the DevTools protocol until it settles,
// optionally sends PAIR_MESSAGE from the page, and prints the status.
func TestHelperBrowser(t *testing.T) {
	if !lan.InHelper() {
		t.Skip("runs inside a simulated host; see TestBrowserPairs")
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--remote-debugging-port=9222", "--remote-allow-origins=*", "--window-size=390,844", "--user-data-dir="+os.Getenv("PAIR_PROFILE"), os.Getenv("PAIR_URL"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var wsURL string
	for deadline := time.Now().Add(15 * time.Second); wsURL == ""; {
		if time.Now().After(deadline) {
			t.Fatal("no DevTools endpoint")
		}
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get("http://127.0.0.1:9222/json")
		if err != nil {
			continue
		}
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		json.NewDecoder(resp.Body).Decode(&targets)
		resp.Body.Close()
		for _, tg := range targets {
			if tg.Type == "page" && strings.Contains(tg.URL, "/p") {
				wsURL = tg.WebSocketDebuggerURL
			}
		}
	}
	ws, err := websocket.Dial(wsURL, "", "http://127.0.0.1/")
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
	waitFor := func(cond string) {
		for deadline := time.Now().Add(10 * time.Second); eval(cond) != "true"; {
			if time.Now().After(deadline) {
				t.Fatalf("page never got to %s; status %q", cond, eval(`document.getElementById("status").textContent`))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if code := os.Getenv("PAIR_CODE"); code != "" {
		waitFor(`!document.getElementById("codeform").hidden`)
		eval(fmt.Sprintf(`document.getElementById("code").value = %q; document.getElementById("codeform").requestSubmit(); "typed"`, code))
	}
	var status string
	for deadline := time.Now().Add(15 * time.Second); ; {
		status = eval(`(document.getElementById("status")||{}).textContent + "|" + (document.getElementById("status")||{}).className`)
		if strings.HasSuffix(status, "|ok") || strings.HasSuffix(status, "|bad") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := os.Getenv("PAIR_MESSAGE"); m != "" && strings.HasSuffix(status, "|ok") {
		eval(fmt.Sprintf(`document.getElementById("msg").value = %q; document.getElementById("msgform").requestSubmit(); "sent"`, m))
		time.Sleep(500 * time.Millisecond)
	}
	// A message from the device to the open page (pairing send).
	if bin, sock := os.Getenv("PAIR_BIN"), os.Getenv("PAIR_SOCKET"); bin != "" && strings.HasSuffix(status, "|ok") {
		out, err := exec.Command(bin, "send", "--socket", sock, "browser", "hi page").CombinedOutput()
		if err != nil {
			t.Fatalf("pairing send to the page: %v %s", err, out)
		}
		waitFor(`document.getElementById("status").textContent === "Message from the device: hi page"`)
		fmt.Println("PAGE_GOT_MESSAGE")
	}
	// A picture of the page at phone size, for a person to look at.
	if path := os.Getenv("PAIR_SCREENSHOT"); path != "" {
		var shot struct{ Data []byte }
		json.Unmarshal(call("Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
		if err := os.WriteFile(path, shot.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text, _, _ := strings.Cut(status, "|")
	fmt.Printf("STATUS<%s>STATUS\n", text)
	fmt.Printf("PAIRED_MS<%s>\n", eval(`document.body.dataset.pairedMs || "0"`))
	fmt.Printf("MARKS<%s>\n", eval(`performance.getEntriesByType("mark").map(m => m.name + "=" + Math.round(m.startTime)).join(" ")`))
}
