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

const firefox = "/usr/bin/firefox-esr"

func requireFirefox(t *testing.T) {
	if _, err := os.Stat(firefox); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs firefox-esr (apt-get install firefox-esr; 'make test' does it)")
		}
		t.Skip("needs firefox-esr")
	}
}

// TestFirefoxPhone: the page in another browser engine, Firefox ESR driven
// over WebDriver BiDi: it pairs with a name, sends a message that shows as
// delivered, sends a file into the inbox and takes one from the device,
// each with its SHA-256.
func TestFirefoxPhone(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	requireFirefox(t)
	t.Parallel()
	a, b := twoHosts(t)
	up, upSum := randomFile(t, "from firefox.bin", 3<<20)
	down, downSum := randomFile(t, "to firefox.bin", 2<<20)
	out := b.RunTest(t, "TestHelperFirefox", "PAIR_URL="+a.qr().URL, "PAIR_PROFILE="+t.TempDir(), "PAIR_FILE="+up, "PAIR_RECV_FILE="+down,
		"PAIR_BIN="+a.bin, "PAIR_SOCKET="+a.socket)
	if !strings.Contains(out, "DELIVERED") || between(out, "PAGE_SHA<", ">") != downSum || !strings.Contains(out, "UPLOADED") {
		t.Fatalf("firefox:\n%s", out)
	}
	if ps := a.peers(); len(ps) != 1 || ps[0].Name != "Firefox phone" {
		t.Fatalf("peers: %+v", ps)
	}
	got := map[string]string{}
	for _, it := range a.inbox() {
		got[it.Kind+":"+it.File+it.Text] = it.SHA256
	}
	if _, text := got["text:hello from firefox"]; got["file:from firefox.bin"] != upSum || !text {
		t.Fatalf("inbox: %v", got)
	}
}

// TestHelperFirefox runs inside a host: Firefox ESR, headless, on
// PAIR_URL, driven over WebDriver BiDi.
func TestHelperFirefox(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestFirefoxPhone")
	}
	call := startFirefox(t, os.Getenv("PAIR_PROFILE"), 9223)
	call("session.new", map[string]any{"capabilities": map[string]any{}})
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
	waitFor := func(cond string, d time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(d); eval(cond) != "true"; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("page never got to %s; status %q", cond, eval(`document.getElementById("status").textContent`))
			}
		}
	}
	waitFor(`!document.getElementById("nameform").hidden`, 20*time.Second)
	fmt.Printf("NAME_GUESS<%s>\n", eval(`document.getElementById("name").value`))
	eval(`document.getElementById("name").value = "Firefox phone"; document.getElementById("nameform").requestSubmit(); "named"`)
	waitFor(`document.getElementById("status").className === "ok"`, 20*time.Second)
	fmt.Printf("STATUS<%s>\n", eval(`document.getElementById("status").textContent`))
	eval(`document.getElementById("msg").value = "hello from firefox"; document.getElementById("msgform").requestSubmit(); "sent"`)
	waitFor(`[...document.querySelectorAll("#history li.me")].some(li => (li.dataset.state||"").startsWith("delivered"))`, 10*time.Second)
	fmt.Println("DELIVERED")
	// Pick a file, as a person does with the file chooser.
	var node struct {
		Result struct {
			SharedID string `json:"sharedId"`
		}
	}
	json.Unmarshal(call("script.evaluate", map[string]any{"expression": `document.getElementById("pick")`, "target": map[string]any{"context": ctx},
		"awaitPromise": false, "resultOwnership": "root"}), &node)
	call("input.setFiles", map[string]any{"context": ctx, "element": map[string]any{"sharedId": node.Result.SharedID}, "files": []string{os.Getenv("PAIR_FILE")}})
	waitFor(`document.querySelector("#files li[data-dir=out][data-state=done]") !== null`, 30*time.Second)
	fmt.Println("UPLOADED")
	res, err := exec.Command(os.Getenv("PAIR_BIN"), "send", "--socket", os.Getenv("PAIR_SOCKET"), "Firefox phone", "--file", os.Getenv("PAIR_RECV_FILE")).CombinedOutput()
	if err != nil {
		t.Fatalf("send to the page: %v %s", err, res)
	}
	waitFor(`!!document.querySelector("#files li[data-sha256]")`, 30*time.Second)
	fmt.Printf("PAGE_SHA<%s>\n", eval(`document.querySelector("#files li[data-sha256]").dataset.sha256`))
}

// startFirefox starts Firefox ESR headless with profile, its WebDriver
// BiDi endpoint on port, and returns a call to it (a command and its
// result; an error fails t). Firefox stops when t ends.
func startFirefox(t *testing.T, profile string, port int) func(method string, params map[string]any) json.RawMessage {
	t.Helper()
	return launchFirefox(t, profile, port).call
}

// firefoxBrowser is one Firefox ESR driven over WebDriver BiDi.
type firefoxBrowser struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  lantest.SyncBuffer // its stdout and stderr
	done chan struct{}      // closed when the process has ended
	ws   *websocket.Conn
	id   int
}

// launchFirefox starts Firefox ESR headless with profile, env added to
// its environment, its WebDriver BiDi endpoint on port. It is killed
// when t ends unless closed before.
func launchFirefox(t *testing.T, profile string, port int, env ...string) *firefoxBrowser {
	t.Helper()
	os.WriteFile(filepath.Join(profile, "user.js"), []byte(`user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("browser.aboutwelcome.enabled", false);
`), 0o644)
	f := &firefoxBrowser{t: t, done: make(chan struct{})}
	f.cmd = exec.Command(firefox, "--headless", fmt.Sprintf("--remote-debugging-port=%d", port), "--remote-allow-origins=http://127.0.0.1", "--profile", profile, "--width=390", "--height=844", "about:blank")
	f.cmd.Env = append(append(os.Environ(), "HOME="+profile, "MOZ_CRASHREPORTER_DISABLE=1"), env...)
	f.cmd.Stdout, f.cmd.Stderr = &f.out, &f.out
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() { f.cmd.Process.Kill(); <-f.done })
	// 60 s: a cold start on a loaded machine takes seconds, a hung one
	// (libfaketime in Firefox, see firefox_life_test.go) forever.
	for deadline := time.Now().Add(60 * time.Second); f.ws == nil; time.Sleep(200 * time.Millisecond) {
		select {
		case <-f.done:
			t.Fatalf("firefox ended before its WebDriver BiDi endpoint opened: %v\n%s", f.cmd.ProcessState, f.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WebDriver BiDi endpoint:\n%s", f.out.String())
		}
		f.ws, _ = websocket.Dial(fmt.Sprintf("ws://127.0.0.1:%d/session", port), "", "http://127.0.0.1/")
	}
	t.Cleanup(func() { f.ws.Close() })
	return f
}

// call sends a command and returns its result; an error, or no answer
// within 30 s, fails the test.
func (f *firefoxBrowser) call(method string, params map[string]any) json.RawMessage {
	f.t.Helper()
	f.id++
	websocket.JSON.Send(f.ws, map[string]any{"id": f.id, "method": method, "params": params})
	f.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var resp struct {
			ID      int             `json:"id"`
			Type    string          `json:"type"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		if err := websocket.JSON.Receive(f.ws, &resp); err != nil {
			f.t.Fatalf("%s: %v", method, err)
		}
		if resp.ID == f.id {
			if resp.Type == "error" {
				f.t.Fatalf("%s: %s %s", method, resp.Error, resp.Message)
			}
			return resp.Result
		}
	}
}

// close quits Firefox as a person does, so its profile (the page's
// IndexedDB) is written out, and waits up to 30 s for it to end.
func (f *firefoxBrowser) close() {
	f.id++
	websocket.JSON.Send(f.ws, map[string]any{"id": f.id, "method": "browser.close", "params": map[string]any{}})
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		f.t.Logf("firefox did not quit within 30 s of browser.close")
	}
}
