package main

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

	"github.com/lanpairing/pairing/internal/lan"
)

// TestFirefoxRenewal: the page in Firefox ESR pairs, renews its
// certificate at +300 days (the clock moved with faketime) and is the
// same single device at +400 days.
func TestFirefoxRenewal(t *testing.T) {
	if lan.InHelper() {
		t.Skip("outer test")
	}
	if _, err := os.Stat(firefox); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs firefox-esr (apt-get install firefox-esr; 'make test' does it)")
		}
		t.Skip("needs firefox-esr")
	}
	requireFaketime(t)
	t.Parallel()
	a, b := twoHosts(t)
	profile := t.TempDir()
	url := a.qr().URL
	run := func(offset string) string {
		return runLong(t, b.Host, "TestHelperFirefoxLife", 3*time.Minute, "PAIR_URL="+url, "PAIR_PROFILE="+profile, "PAIR_FAKETIME="+offset)
	}
	if out := run(""); !strings.HasPrefix(between(out, "STATUS<", ">"), "Paired.") {
		t.Fatalf("pairing:\n%s", out)
	}
	first := a.peers()
	if out := run("+300d"); between(out, "STATUS<", ">") != "Connected again. This phone stays paired." {
		t.Fatalf("at +300 days:\n%s", out)
	}
	renewed := a.peers()
	if len(first) != 1 || len(renewed) != 1 || renewed[0].Fingerprint == first[0].Fingerprint || renewed[0].Name != "Firefox phone" {
		t.Fatalf("at +300 days the device did not move: before %+v, after %+v", first, renewed)
	}
	if out := run("+400d"); between(out, "STATUS<", ">") != "Connected again. This phone stays paired." {
		t.Fatalf("at +400 days:\n%s", out)
	}
	if last := a.peers(); len(last) != 1 || last[0].Fingerprint != renewed[0].Fingerprint {
		t.Fatalf("at +400 days: %+v", last)
	}
}

// TestHelperFirefoxLife runs inside a host: Firefox ESR on PAIR_URL with
// PAIR_PROFILE, its clock moved by PAIR_FAKETIME; it names the page
// "Firefox phone" when asked and prints the final STATUS<…>.
func TestHelperFirefoxLife(t *testing.T) {
	if !lan.InHelper() {
		t.Skip("runs inside a simulated host; see TestFirefoxRenewal")
	}
	profile := os.Getenv("PAIR_PROFILE")
	os.WriteFile(filepath.Join(profile, "user.js"), []byte(`user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("browser.aboutwelcome.enabled", false);
`), 0o644)
	cmd := exec.Command(firefox, "--headless", "--remote-debugging-port=9223", "--remote-allow-origins=http://127.0.0.1", "--profile", profile, "--width=390", "--height=844", "about:blank")
	cmd.Env = append(os.Environ(), "HOME="+profile, "MOZ_CRASHREPORTER_DISABLE=1")
	if off := os.Getenv("PAIR_FAKETIME"); off != "" {
		cmd.Env = append(cmd.Env, fakeTimeEnv(off)...)
	}
	var ffOut lan.SyncBuffer
	cmd.Stdout, cmd.Stderr = &ffOut, &ffOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var ws *websocket.Conn
	for deadline := time.Now().Add(60 * time.Second); ws == nil; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no WebDriver BiDi endpoint:\n%s", ffOut.String())
		}
		ws, _ = websocket.Dial("ws://127.0.0.1:9223/session", "", "http://127.0.0.1/")
	}
	defer ws.Close()
	id := 0
	call := func(method string, params map[string]any) json.RawMessage {
		t.Helper()
		id++
		websocket.JSON.Send(ws, map[string]any{"id": id, "method": method, "params": params})
		ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			var resp struct {
				ID      int             `json:"id"`
				Type    string          `json:"type"`
				Result  json.RawMessage `json:"result"`
				Error   string          `json:"error"`
				Message string          `json:"message"`
			}
			if err := websocket.JSON.Receive(ws, &resp); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
			if resp.ID == id {
				if resp.Type == "error" {
					t.Fatalf("%s: %s %s", method, resp.Error, resp.Message)
				}
				return resp.Result
			}
		}
	}
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
	var state string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		state = eval(`!document.getElementById("nameform").hidden ? "ask" : document.getElementById("status").className`)
		if state == "ask" {
			eval(`document.getElementById("name").value = "Firefox phone"; document.getElementById("nameform").requestSubmit(); "named"`)
			continue
		}
		if state == "ok" || state == "bad" || time.Now().After(deadline) {
			break
		}
	}
	fmt.Printf("STATUS<%s>\nCERT_EXPIRES<%s>\n", eval(`document.getElementById("status").textContent`), eval(`document.body.dataset.certExpires`))
	// Closed as a person closes it, so the profile is written.
	id++
	websocket.JSON.Send(ws, map[string]any{"id": id, "method": "browser.close", "params": map[string]any{}})
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
	}
}
