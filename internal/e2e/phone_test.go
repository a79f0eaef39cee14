package e2e

// A phone that stays paired and does what people pair it for (issue 15),
// with headless Chromium at phone size as the phone: names, files both
// ways, messages with acks, a lost connection and its reconnect, and the
// same pairing after a daemon restart.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
)

// randomFile writes n random bytes to a new file and returns its path
// and SHA-256.
func randomFile(t *testing.T, name string, n int) (string, string) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return path, hex.EncodeToString(sum[:])
}

// phone runs the browser helper in h with env and returns its output.
func phone(t *testing.T, h *lantest.Host, env ...string) string {
	t.Helper()
	return h.RunTest(t, "TestHelperBrowser", env...)
}

// phoneAsync is phone in the background, for a dance with the outer test.
func phoneAsync(h *lantest.Host, env ...string) <-chan string {
	done := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := h.Command(ctx, os.Args[0], "-test.run=^TestHelperBrowser$", "-test.v", "-test.count=1")
		cmd.Env = append(append(cmd.Env, lantest.HelperEnv+"=1"), env...)
		out, _ := cmd.CombinedOutput()
		done <- string(out)
	}()
	return done
}

func between(out, open, close string) string {
	m := regexp.MustCompile(regexp.QuoteMeta(open) + `(.*?)` + regexp.QuoteMeta(close)).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	lantest.Eventually(t, 30*time.Second, func() error {
		if _, err := os.Stat(path); err != nil {
			return err
		}
		return nil
	})
}

func TestPhone(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	// max-file-mb 8: a larger file is refused before it starts.
	conf := filepath.Join(t.TempDir(), "pairing.conf")
	os.WriteFile(conf, []byte("max-file-mb = 8\n"), 0o644)
	a, b := twoHosts(t, "--config", conf)
	profile := t.TempDir()
	shots := os.Getenv("PAIRING_SCREENSHOTS")
	env := func(extra ...string) []string {
		e := []string{"PAIR_PROFILE=" + profile, "PAIR_BIN=" + a.bin, "PAIR_SOCKET=" + a.socket, "PAIR_PEER=Anna's phone"}
		if shots != "" {
			e = append(e, "PAIR_SHOTS="+shots)
		}
		return append(e, extra...)
	}
	w := a.qr()

	// Pair, naming the phone; the page's guess comes from its user agent.
	out := phone(t, b.Host, env("PAIR_URL="+w.URL, "PAIR_NAME=Anna's phone", "PAIR_MESSAGE=hello")...)
	if g := between(out, "NAME_GUESS<", ">"); g != "Android phone (Chrome)" {
		t.Errorf("name guess %q", g)
	}
	if !strings.Contains(out, "DELIVERED") || between(out, "TITLE<", ">") != "Connected to a" {
		t.Fatalf("pairing and a message:\n%s", out)
	}
	ps := a.peers()
	if len(ps) != 1 || ps[0].Name != "Anna's phone" || ps[0].Kind != "browser" {
		t.Fatalf("peers: %+v", ps)
	}
	if !strings.Contains(a.daemon.Stderr(), `name="Anna's phone"`) {
		t.Errorf("the log does not name the phone")
	}

	// The daemon restarts: same port, same origin, the same profile is
	// the same paired device, with no new entry.
	a.daemon.Stop()
	a.serve("--config", conf)
	if st, _ := a.status(); st == nil || !strings.Contains(w.URL, ":"+strconv.Itoa(st.Port)+"/") {
		t.Fatalf("the port changed across the restart: %s vs %+v", w.URL, st)
	}
	two, sum2 := randomFile(t, "photo 1.jpg", 3<<20)
	three, sum3 := randomFile(t, "clip.mp4", 5<<20)
	big, _ := randomFile(t, "too big.bin", 9<<20)
	toPhone, sumTo := randomFile(t, "for the phone.pdf", 2<<20)
	out = phone(t, b.Host, env("PAIR_URL="+w.URL, "PAIR_FILES="+two+","+three+","+big, "PAIR_RECV_FILE="+toPhone)...)
	if !strings.Contains(out, "STATUS<Connected again. This phone stays paired.>STATUS") || strings.Contains(out, "NAME_GUESS") {
		t.Fatalf("after the restart:\n%s", out)
	}
	if again := a.peers(); len(again) != 1 || again[0].Fingerprint != ps[0].Fingerprint {
		t.Fatalf("after the restart: %+v", again)
	}
	// Two files from the page reached the inbox with their SHA-256; the
	// one over the limit was refused before it started.
	files := between(out, "FILES<", ">")
	if !regexp.MustCompile(`^done:[^;]*;done:[^;]*;failed:failed: too large: the device takes files up to 8 MB$`).MatchString(files) {
		t.Errorf("file states on the page: %q", files)
	}
	got := map[string]string{}
	for _, it := range a.inbox() {
		if it.Kind == "file" {
			got[it.File] = it.SHA256
		}
	}
	if got["photo 1.jpg"] != sum2 || got["clip.mp4"] != sum3 || len(got) != 2 {
		t.Errorf("inbox files: %v (want photo 1.jpg %s, clip.mp4 %s)", got, sum2[:8], sum3[:8])
	}
	// A file to the open page: the page's SHA-256 is the file's.
	if page, sent := between(out, "PAGE_SHA<", ">"), between(out, "SEND_SHA<", ">"); page != sumTo || sent != sumTo {
		t.Errorf("file to the page: page %q, send %q, want %q", page, sent, sumTo)
	}

	// The page closes in the middle of a file: what arrived is kept for
	// a resume, nothing is in the inbox (the daemon restarts with the
	// default limit for that).
	a.daemon.Stop()
	a.serve()
	huge, _ := randomFile(t, "huge.bin", 64<<20)
	out = phone(t, b.Host, env("PAIR_URL="+w.URL, "PAIR_FILES="+huge, "PAIR_CLOSE_HALF=1")...)
	if !strings.Contains(out, "CLOSED") {
		t.Fatalf("interrupting an upload:\n%s", out)
	}
	// A killed browser says nothing: ICE gives up after 10 s of silence,
	// and the partial is kept with its key (see TestPhoneResume).
	lantest.Eventually(t, 20*time.Second, func() error {
		meta, _ := filepath.Glob(filepath.Join(a.state, "inbox", ".pairing", "resume-*.json"))
		if p := a.partial(); len(p) != 1 || len(meta) != 1 || !strings.Contains(a.daemon.Stderr(), "inbox: transfer interrupted") {
			return errorf("want one partial kept with its key after the interruption: %v %v", p, meta)
		}
		return nil
	})
	for _, it := range a.inbox() {
		if it.File == "huge.bin" {
			t.Errorf("the interrupted file is in the inbox")
		}
	}

	// The daemon stops while the page is open: the page says so, and its
	// Reconnect button works once the daemon is back. While the page is
	// open, peers shows the phone online.
	sync := t.TempDir()
	done := phoneAsync(b.Host, env("PAIR_URL="+w.URL, "PAIR_SYNC="+sync)...)
	waitFile(t, filepath.Join(sync, "paired"))
	if ps := a.peers(); len(ps) != 1 || !ps[0].Online {
		t.Errorf("the phone with its page open is not online: %+v", ps)
	}
	a.daemon.Stop()
	os.WriteFile(filepath.Join(sync, "stopped"), nil, 0o644)
	waitFile(t, filepath.Join(sync, "lost"))
	a.serve()
	os.WriteFile(filepath.Join(sync, "started"), nil, 0o644)
	out = <-done
	if !strings.Contains(out, "LOST<Reconnect>") || !strings.Contains(out, "RECONNECTED") || !strings.Contains(out, "--- PASS") {
		t.Fatalf("lost and reconnected:\n%s", out)
	}
	// A file to a phone whose page is closed: a clear refusal.
	_, errOut, err := a.Run(a.bin, "send", "--socket", a.socket, "Anna's phone", "--file", toPhone)
	if exitCode(err) != 1 || !strings.Contains(errOut, "the phone's page is not open; open the bookmark or scan again") {
		t.Errorf("send to a closed page: exit %d: %s", exitCode(err), errOut)
	}

	// A second phone with the same name: send refuses it and lists both.
	w = a.qr()
	phone(t, b.Host, "PAIR_URL="+w.URL, "PAIR_PROFILE="+t.TempDir(), "PAIR_NAME=Anna's phone")
	_, errOut, err = a.Run(a.bin, "send", "--socket", a.socket, "Anna's phone", "hi")
	if exitCode(err) != 1 || !strings.Contains(errOut, "more than one paired device matches") || strings.Count(errOut, "(Anna's phone)") != 2 {
		t.Errorf("send to an ambiguous name: exit %d: %s", exitCode(err), errOut)
	}
}
