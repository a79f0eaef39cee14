package e2e

// Code guessing from many sources against a real `pairing serve`.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
)

// TestAttackCodeGuessing: many sources interleave code guesses against a
// link window. At most MaxFailures are evaluated, then the window closes
// and says why everywhere; a window shown as a QR code evaluates no code
// at all; neither the secret nor a code ever reaches the log.
func TestAttackCodeGuessing(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	const nSrc = 24
	a, b, x := attackLAN(t, nSrc)
	a.serve()
	target := "10.1.0.1:" + strconv.Itoa(a.port())
	w := a.qr("--link")
	codes := []string{w.Code}

	out := x.RunTest(t, "TestHelperAttackGuess", "ATTACK_TARGET="+target, "ATTACK_SOURCES="+sources(nSrc), "ATTACK_N=300")
	r := result(t, out)
	evaluated := r["wrong_code"] + r["too_many_attempts_hit"]
	t.Logf("300 guesses from %d sources: %v", nSrc, r)
	if evaluated > pairing.MaxFailures || r["too_many_attempts"] == 0 {
		t.Fatalf("%d guesses evaluated (cap %d), %d refused as too many attempts: %v", evaluated, pairing.MaxFailures, r["too_many_attempts"], r)
	}
	st, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Window.Open || !strings.Contains(st.Window.Closed, "too many wrong attempts") {
		t.Fatalf("window after the attack: %+v", st.Window)
	}
	if !strings.Contains(a.daemon.Stderr(), `msg="pairing window closed" why="too many wrong attempts`) {
		t.Fatal("the log does not say why the window closed")
	}
	// A phone that scans the old code is told why, in words.
	requireChromium(t)
	var shot []string
	if dir := os.Getenv("PAIRING_SCREENSHOTS"); dir != "" {
		shot = []string{"PAIR_SCREENSHOT=" + filepath.Join(dir, "page-too-many-attempts.png")}
	}
	if status, _ := browseTimed(t, b.Host, w.URL, t.TempDir(), "", shot...); !strings.Contains(status, "Too many wrong attempts") {
		t.Fatalf("the page after the cap: %q", status)
	}
	// qr opens a new window and says what happened to the last one.
	human, _, err := a.Run(a.bin, "qr", "--socket", a.socket)
	if err != nil || !strings.Contains(human, "the last window closed early: too many wrong attempts") {
		t.Fatalf("qr after the attack: %v\n%s", err, human)
	}
	// That window was shown as a QR code: codes are not even evaluated.
	w2 := a.qr()
	out = x.RunTest(t, "TestHelperAttackGuess", "ATTACK_TARGET="+target, "ATTACK_SOURCES="+sources(nSrc), "ATTACK_N=100")
	if r := result(t, out); r["no_code"] != 100 {
		t.Fatalf("codes against a QR window: %v, want 100 no_code", r)
	}
	if _, stderr, code := b.join(w2.URL); code != 0 {
		t.Fatalf("the owner's QR code after the attacks: %s", stderr)
	}
	codes = append(codes, a.qr("--link").Code)
	// No secret and no code in the log, at debug level.
	log := a.daemon.Stderr()
	for _, u := range []string{w.URL, w2.URL} {
		s := u[strings.Index(u, "&s=")+3:]
		s = s[:strings.Index(s, "&")]
		if strings.Contains(log, s) {
			t.Fatalf("the secret %s is in the log", s)
		}
	}
	for _, c := range codes {
		if strings.Contains(log, c) {
			t.Fatalf("the code %s is in the log", c)
		}
	}
}

func TestHelperAttackGuess(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackCodeGuessing")
	}
	target := os.Getenv("ATTACK_TARGET")
	n, _ := strconv.Atoi(os.Getenv("ATTACK_N"))
	var srcs []netip.Addr
	for _, s := range strings.Split(os.Getenv("ATTACK_SOURCES"), ",") {
		srcs = append(srcs, netip.MustParseAddr(s))
	}
	id := attacker(t)
	counts := map[string]int{}
	for i := range n {
		body, _ := json.Marshal(pairing.PairRequest{Code: fmt.Sprintf("%06d", rand.IntN(1000000)), Name: "x", Kind: pairing.KindDevice})
		status, reason, err := postFrom(id, srcs[i%len(srcs)], target, pairing.PathPair, body)
		switch {
		case err != nil:
			counts["error"]++
		case status == http.StatusOK:
			counts["paired"]++ // a lucky guess: 1 in 25,000 at most
		case reason == "too_many_attempts" && counts["too_many_attempts"] == 0 && counts["too_many_attempts_hit"] == 0:
			counts["too_many_attempts_hit"]++ // the guess that hit the cap was evaluated too
		default:
			counts[reason]++
		}
	}
	printResult(t, counts)
}
