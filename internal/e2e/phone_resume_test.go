package e2e

// Page↔daemon resume: a 500 MB file cut at about half by killing the
// phone's browser, then sent again from the same profile, both ways and
// on both of the page's paths (the bulk path, and the data channel of a
// browser that cannot take the bulk path).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
)

// resumeMB is the size of the file the resume tests cut.
const resumeMB = 500

// noBulk makes a page that cannot take the bulk path (as a browser
// without DataView.setBigUint64, Safari before 15): its files take the
// data channel.
const noBulk = `DataView.prototype.setBigUint64 = undefined;`

func TestPhoneResume(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	for _, c := range []struct {
		name, dir string
		bulk      bool
	}{{"down bulk", "down", true}, {"up bulk", "up", true}, {"down channel", "down", false}, {"up channel", "up", false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conf := filepath.Join(t.TempDir(), "pairing.conf")
			os.WriteFile(conf, []byte("max-file-mb = 2048\nmax-inbox-mb = 4096\n"), 0o644)
			a, b := twoHosts(t, "--config", conf)
			name := "resume-" + c.dir + ".bin"
			file, sum := randomFile(t, name, resumeMB<<20)
			env := helperEnv(a, a.qr().URL, t.TempDir(), "PAIR_NAME=resumer", "PAIR_PEER=resumer", "PAIR_DIR="+c.dir, "PAIR_FILE="+file)
			if !c.bulk {
				env = append(env, "PAIR_NOBULK=1")
			}
			out := runLong(t, b.Host, "TestHelperPhoneResume", 6*time.Minute, env...)
			via := "webrtc"
			if c.bulk {
				via = "bulk"
			}
			checkResumed(t, a, c.dir, name, sum, via, out)
		})
	}
}

// checkResumed checks a resume test's second send (out is its helper's):
// the file is whole (its SHA-256 where it went), it went on path via
// (the daemon's log), and it moved less than 60 % of the bytes.
func checkResumed(t *testing.T, a *node, dir, name, sum, via, out string) {
	t.Helper()
	cut, _ := strconv.ParseInt(between(out, "CUT<", ">"), 10, 64)
	if cut == 0 {
		t.Fatalf("never cut:\n%s", out)
	}
	var moved, resumed int64
	if dir == "down" {
		var res control.SendResult
		json.Unmarshal([]byte(between(out, "SEND2<", ">SEND2")), &res)
		if res.SHA256 != sum || between(out, "PAGE_SHA<", ">") != sum {
			t.Fatalf("the resumed file: sent %q, page %q, want %s\n%s", res.SHA256, between(out, "PAGE_SHA<", ">"), sum, out)
		}
		if res.Path != via {
			t.Errorf("the second send went %s, want %s", res.Path, via)
		}
		resumed, moved = res.ResumedBytes, int64(resumeMB<<20)-res.ResumedBytes
	} else {
		if st := between(out, "FILE_STATE<", ">"); !strings.HasPrefix(st, "done:") || !strings.Contains(st, "resumed at") {
			t.Fatalf("up from the page: %q\n%s", st, out)
		}
		if got := a.inboxSHA(name); got != sum {
			t.Fatalf("inbox has %s with SHA-256 %q, want %s", name, got, sum)
		}
		m := regexp.MustCompile(`msg=received .*name=` + regexp.QuoteMeta(name) + ` .*resumed_from=(\d+) moved=(\d+) path=(\w+)`).FindStringSubmatch(a.daemon.Stderr())
		if m == nil {
			t.Fatalf("no received line for %s in the daemon's log", name)
		}
		resumed, _ = strconv.ParseInt(m[1], 10, 64)
		moved, _ = strconv.ParseInt(m[2], 10, 64)
		if m[3] != via {
			t.Errorf("the resumed file came %s, want %s", m[3], via)
		}
	}
	t.Logf("cut at %d MB; the second send resumed at %d MB and moved %d MB of %d", cut>>20, resumed>>20, moved>>20, resumeMB)
	if moved >= int64(resumeMB<<20)*60/100 {
		t.Errorf("the second send moved %d MB of %d MB (cut at %d MB): not resumed", moved>>20, resumeMB, cut>>20)
	}
}

// TestHelperPhoneResume runs inside a host: the page in Chromium pairs
// (PAIR_URL, PAIR_PROFILE), then a file (PAIR_FILE) goes PAIR_DIR (down:
// `pairing send` to the page; up: picked on the page) and the browser is
// killed at about half (CUT<bytes>); the browser starts again on the
// same profile and the file goes again: down prints SEND2<json>SEND2 and
// PAGE_SHA<…>, up FILE_STATE<…>. PAIR_NOBULK: the page cannot take the
// bulk path.
func TestHelperPhoneResume(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestPhoneResume")
	}
	var before []string
	if os.Getenv("PAIR_NOBULK") != "" {
		before = append(before, noBulk)
	}
	file, dir := os.Getenv("PAIR_FILE"), os.Getenv("PAIR_DIR")
	p := openPage(t, os.Getenv("PAIR_URL"), os.Getenv("PAIR_PROFILE"), nil, before...)
	if kind, text := p.pair(os.Getenv("PAIR_NAME")); kind != "ok" {
		t.Fatalf("pairing: %s %q", kind, text)
	}
	cutAtHalf(t, p, dir, file, p.kill)
	p = openPage(t, os.Getenv("PAIR_URL"), os.Getenv("PAIR_PROFILE"), nil, before...)
	if kind, text := p.pair(os.Getenv("PAIR_NAME")); kind != "ok" {
		t.Fatalf("pairing again: %s %q", kind, text)
	}
	sendAgain(t, p, dir, file)
	p.shot("resumed-" + dir)
	p.close()
}

// resumePage is a browser's page as the resume tests drive it.
type resumePage interface {
	pick(files ...string)
	waitFor(cond string, d time.Duration)
	eval(expr string) string
}

// resumeItem is the page's list item of the file going dir.
func resumeItem(dir string) string {
	return `#files li[data-dir=` + map[string]string{"down": "in", "up": "out"}[dir] + `]`
}

// sendFile runs `pairing send` of file to the page (PAIR_BIN,
// PAIR_SOCKET, PAIR_PEER), with --json.
func sendFile(ctx context.Context, file string) *exec.Cmd {
	return exec.CommandContext(ctx, os.Getenv("PAIR_BIN"), "send", "--socket", os.Getenv("PAIR_SOCKET"), os.Getenv("PAIR_PEER"), "--file", file, "--json")
}

// cutAtHalf starts file going dir (down: `pairing send`; up: picked on
// the page) and calls kill once the page shows about half of it
// (CUT<bytes>); a send to the page must then end (FIRST<its error>).
func cutAtHalf(t *testing.T, p resumePage, dir, file string, kill func()) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first *exec.Cmd
	if dir == "down" {
		first = sendFile(ctx, file)
		if err := first.Start(); err != nil {
			t.Fatal(err)
		}
	} else {
		p.pick(file)
	}
	bar := resumeItem(dir) + " progress"
	p.waitFor(fmt.Sprintf(`(document.querySelector(%q) || {value: 0}).value >= %d`, bar, fi.Size()/2), 3*time.Minute)
	fmt.Printf("CUT<%s>\n", p.eval(fmt.Sprintf(`String(document.querySelector(%q).value)`, bar)))
	kill()
	if first == nil {
		return
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	select {
	case err := <-done:
		fmt.Printf("FIRST<%v>\n", err)
	case <-time.After(90 * time.Second):
		t.Fatal("the first send never ended after the page was killed")
	}
}

// sendAgain sends file going dir again, to its end: down prints
// SEND2<the send's JSON>SEND2 and PAGE_SHA<…>, up FILE_STATE<…>.
func sendAgain(t *testing.T, p resumePage, dir, file string) {
	t.Helper()
	li := resumeItem(dir)
	if dir == "up" {
		p.pick(file)
		p.waitFor(fmt.Sprintf(`!!document.querySelector(%q)`, li+"[data-state]"), 3*time.Minute)
		fmt.Printf("FILE_STATE<%s>\n", p.eval(fmt.Sprintf(`document.querySelector(%q).dataset.state + ":" + document.querySelector(%q).textContent`, li, li+" small")))
		return
	}
	out, err := sendFile(context.Background(), file).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("the second send: %v %s%s", err, out, stderr)
	}
	var flat bytes.Buffer
	json.Compact(&flat, out)
	fmt.Printf("SEND2<%s>SEND2\n", flat.String())
	p.waitFor(`!!document.querySelector("#files li[data-sha256]")`, 3*time.Minute)
	fmt.Printf("PAGE_SHA<%s>\n", p.eval(`document.querySelector("#files li[data-sha256]").dataset.sha256`))
}
