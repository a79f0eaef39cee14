package e2e

// Page↔daemon resume in Firefox ESR: TestPhoneResume's 500 MB file on the
// bulk path, cut at about half by killing Firefox (SIGKILL, every one of
// its processes: a crash, or a phone that closed the browser), then sent
// again from the same profile, both ways.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
)

func TestFirefoxResume(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	requireFirefox(t)
	t.Parallel()
	for _, dir := range []string{"down", "up"} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			conf := filepath.Join(t.TempDir(), "pairing.conf")
			os.WriteFile(conf, []byte("max-file-mb = 2048\nmax-inbox-mb = 4096\n"), 0o644)
			a, b := twoHosts(t, "--config", conf)
			name := "firefox-resume-" + dir + ".bin"
			file, sum := randomFile(t, name, resumeMB<<20)
			out := runLong(t, b.Host, "TestHelperFirefoxResume", 6*time.Minute,
				helperEnv(a, a.qr().URL, t.TempDir(), "PAIR_PEER=Firefox phone", "PAIR_DIR="+dir, "PAIR_FILE="+file)...)
			if dir == "down" {
				t.Logf("the page's partial before the kill %s, after the restart %s (%s killed)", between(out, "PARTIALS_BEFORE<", ">PARTIALS_BEFORE"), between(out, "PARTIALS_AFTER<", ">PARTIALS_AFTER"), between(out, "KILLED<", ">"))
			}
			checkResumed(t, a, dir, name, sum, "bulk", out)
		})
	}
}

// readPartials is a script that reads the page's kept partials from its
// IndexedDB ("pairing": the records in "partials", the number of pieces
// in "chunks"), as JSON.
const readPartials = `new Promise(resolve => {
  const o = indexedDB.open("pairing");
  o.onerror = () => resolve("error: " + o.error);
  o.onsuccess = () => {
    const d = o.result;
    if (!d.objectStoreNames.contains("partials")) { d.close(); return resolve("none"); }
    const t = d.transaction(["partials", "chunks"]);
    const recs = t.objectStore("partials").getAll(), pieces = t.objectStore("chunks").count();
    t.oncomplete = () => { d.close(); resolve(JSON.stringify({partials: recs.result, pieces: pieces.result})); };
    t.onerror = () => { d.close(); resolve("error: " + t.error); };
  };
})`

// firefoxPage is the pairing page in one Firefox.
type firefoxPage struct {
	t   *testing.T
	f   *firefoxBrowser
	ctx string // its browsing context
}

// openFirefoxPage starts Firefox on profile (its WebDriver BiDi endpoint
// on port) and opens url.
func openFirefoxPage(t *testing.T, url, profile string, port int) *firefoxPage {
	t.Helper()
	p := &firefoxPage{t: t, f: launchFirefox(t, profile, port)}
	p.f.call("session.new", map[string]any{"capabilities": map[string]any{}})
	var tree struct{ Contexts []struct{ Context string } }
	json.Unmarshal(p.f.call("browsingContext.getTree", map[string]any{}), &tree)
	if len(tree.Contexts) != 1 {
		t.Logf("firefox opened %d tabs", len(tree.Contexts))
	}
	p.ctx = tree.Contexts[0].Context
	p.f.call("browsingContext.navigate", map[string]any{"context": p.ctx, "url": url, "wait": "complete"})
	return p
}

// eval evaluates expr in the page (awaiting a promise) and returns its
// value as text; a number should be made a string by the script.
func (p *firefoxPage) eval(expr string) string {
	var r struct {
		Result struct{ Value any }
	}
	json.Unmarshal(p.f.call("script.evaluate", map[string]any{"expression": expr, "target": map[string]any{"context": p.ctx}, "awaitPromise": true}), &r)
	return fmt.Sprint(r.Result.Value)
}

func (p *firefoxPage) waitFor(cond string, d time.Duration) {
	p.t.Helper()
	for deadline := time.Now().Add(d); p.eval(cond) != "true"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("page never got to %s; status %q", cond, p.eval(`document.getElementById("status").textContent`))
		}
	}
}

// pair waits until the page is paired (naming it name when it asks) and
// returns its status; a page that says it failed fails the test.
func (p *firefoxPage) pair(name string) string {
	p.t.Helper()
	state := ""
	for deadline := time.Now().Add(60 * time.Second); state != "ok"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) || state == "bad" {
			p.t.Fatalf("the page did not pair: %q", p.eval(`document.getElementById("status").textContent`))
		}
		state = p.eval(`!document.getElementById("nameform").hidden ? "ask" : document.getElementById("status").className`)
		if state == "ask" {
			p.eval(fmt.Sprintf(`document.getElementById("name").value = %q; document.getElementById("nameform").requestSubmit(); "named"`, name))
		}
	}
	return p.eval(`document.getElementById("status").textContent`)
}

// pick puts files in the page's file input, as a person choosing them.
func (p *firefoxPage) pick(files ...string) {
	var node struct {
		Result struct {
			SharedID string `json:"sharedId"`
		}
	}
	json.Unmarshal(p.f.call("script.evaluate", map[string]any{"expression": `document.getElementById("pick")`, "target": map[string]any{"context": p.ctx},
		"awaitPromise": false, "resultOwnership": "root"}), &node)
	p.f.call("input.setFiles", map[string]any{"context": p.ctx, "element": map[string]any{"sharedId": node.Result.SharedID}, "files": files})
}

// kill ends Firefox and all its processes (content, socket, GPU) with
// SIGKILL, as a crash does: nothing is written on the way out. It
// returns how many processes it killed.
func (p *firefoxPage) kill() int {
	pid := p.f.cmd.Process.Pid
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
				parent[n], _ = strconv.Atoi(f[1])
			}
		}
	}
	tree := []int{pid}
	for changed := true; changed; {
		changed = false
		for c, pp := range parent {
			if pp != 0 && containsInt(tree, pp) && !containsInt(tree, c) {
				tree, changed = append(tree, c), true
			}
		}
	}
	for _, q := range tree {
		syscall.Kill(q, syscall.SIGKILL)
	}
	<-p.f.done
	p.f.ws.Close()
	return len(tree)
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestHelperFirefoxResume runs inside a host: the page in Firefox ESR
// pairs (PAIR_URL, PAIR_PROFILE, named "Firefox phone"), then a file
// (PAIR_FILE) goes PAIR_DIR (down: `pairing send` to the page; up: picked
// on the page) and Firefox is killed at about half (CUT<bytes>); Firefox
// starts again on the same profile and the file goes again: down prints
// PARTIALS_BEFORE/PARTIALS_AFTER (the page's IndexedDB partials before
// the kill and after the restart), SEND2<json>SEND2 and PAGE_SHA<…>, up
// FILE_STATE<…>.
func TestHelperFirefoxResume(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestFirefoxResume")
	}
	file, dir, profile, url := os.Getenv("PAIR_FILE"), os.Getenv("PAIR_DIR"), os.Getenv("PAIR_PROFILE"), os.Getenv("PAIR_URL")
	p := openFirefoxPage(t, url, profile, 9231)
	fmt.Printf("STATUS<%s>\n", p.pair("Firefox phone"))
	cutAtHalf(t, p, dir, file, func() {
		if dir == "down" {
			fmt.Printf("PARTIALS_BEFORE<%s>PARTIALS_BEFORE\n", p.eval(readPartials))
		}
		fmt.Printf("KILLED<%d processes>\n", p.kill())
	})
	p = openFirefoxPage(t, url, profile, 9232)
	if dir == "down" {
		fmt.Printf("PARTIALS_AFTER<%s>PARTIALS_AFTER\n", p.eval(readPartials))
	}
	fmt.Printf("STATUS2<%s>\n", p.pair("Firefox phone"))
	sendAgain(t, p, dir, file)
	p.f.close()
}
