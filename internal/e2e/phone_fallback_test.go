package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
)

// blockBulk makes the page's HTTP requests of the bulk path fail as a
// network that drops them would (the page itself and its offer go
// through).
const blockBulk = `{ const f = window.fetch; window.fetch = (u, o) => String(u).includes("/p/bulk/") ? Promise.reject(new TypeError("Failed to fetch")) : f(u, o); }`

// TestPhoneBulkFallback: where the bulk path fails, files still move, on
// the data channel: a file from the page goes on from where HTTP failed;
// a file to the page fails once with the page's reason (its refusal has
// its own hint), and the next send takes the data channel.
func TestPhoneBulkFallback(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	a, b := twoHosts(t)
	up, upSum := randomFile(t, "fallback-up.bin", 8<<20)
	down, downSum := randomFile(t, "fallback-down.bin", 8<<20)
	out := runLong(t, b.Host, "TestHelperPhoneFallback", 3*time.Minute, helperEnv(a, a.qr().URL, t.TempDir(), "PAIR_PEER=fallback", "PAIR_SEND_FILE="+up, "PAIR_RECV_FILE="+down)...)
	if st := between(out, "FILE_STATE<", ">"); !strings.HasPrefix(st, "done:") {
		t.Fatalf("up from the page: %q\n%s", st, out)
	}
	got := a.inboxSHA("fallback-up.bin")
	if got != upSum || !strings.Contains(a.daemon.Stderr(), "name=fallback-up.bin bytes=8388608 resumed_from=0 moved=8388608 path=webrtc") {
		t.Errorf("the file from the page: inbox SHA-256 %q, want %s, on the data channel", got, upSum)
	}
	if first := between(out, "FIRST<", ">FIRST"); !strings.Contains(first, "the fast path is blocked") || !strings.Contains(first, "sending the same file again resumes") {
		t.Errorf("the first send to the page: %q", first)
	}
	var res control.SendResult
	json.Unmarshal([]byte(between(out, "SECOND<", ">SECOND")), &res)
	if res.SHA256 != downSum || res.Path != "webrtc" || between(out, "PAGE_SHA<", ">") != downSum {
		t.Errorf("the second send to the page: %+v, page %q, want %s on the data channel", res, between(out, "PAGE_SHA<", ">"), downSum)
	}
}

// TestHelperPhoneFallback runs inside a host: a page whose bulk requests
// fail pairs (PAIR_URL), sends PAIR_SEND_FILE (FILE_STATE), and is sent
// PAIR_RECV_FILE twice (FIRST<the failed send's words>FIRST,
// SECOND<json>SECOND, PAGE_SHA).
func TestHelperPhoneFallback(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestPhoneBulkFallback")
	}
	p := openPage(t, os.Getenv("PAIR_URL"), os.Getenv("PAIR_PROFILE"), nil, blockBulk)
	if kind, text := p.pair("fallback"); kind != "ok" {
		t.Fatalf("pairing: %s %q", kind, text)
	}
	p.pick(os.Getenv("PAIR_SEND_FILE"))
	p.waitFor(`!!document.querySelector("#files li[data-dir=out][data-state]")`, time.Minute)
	fmt.Printf("FILE_STATE<%s>\n", p.eval(`document.querySelector("#files li[data-dir=out]").dataset.state + ":" + document.querySelector("#files li[data-dir=out] small").textContent`))
	send := func() ([]byte, error) {
		return exec.Command(os.Getenv("PAIR_BIN"), "send", "--socket", os.Getenv("PAIR_SOCKET"), os.Getenv("PAIR_PEER"), "--file", os.Getenv("PAIR_RECV_FILE"), "--json").CombinedOutput()
	}
	out, err := send()
	if err == nil {
		t.Fatalf("the first send to a page whose bulk path fails succeeded: %s", out)
	}
	fmt.Printf("FIRST<%s>FIRST\n", strings.ReplaceAll(string(out), "\n", " "))
	if out, err = send(); err != nil {
		t.Fatalf("the second send: %v %s", err, out)
	}
	fmt.Printf("SECOND<%s>SECOND\n", strings.ReplaceAll(string(out), "\n", " "))
	p.waitFor(`!!document.querySelector("#files li[data-sha256]")`, time.Minute)
	fmt.Printf("PAGE_SHA<%s>\n", p.eval(`document.querySelector("#files li[data-sha256]").dataset.sha256`))
	p.shot("fallback")
	p.close()
}
