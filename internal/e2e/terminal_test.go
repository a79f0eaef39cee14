package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
)

// term is a tmux terminal of a given size in a host, running one command
// line, as a person at that terminal sees it.
type term struct {
	n    *node
	sock string
}

func newTerm(t *testing.T, n *node, cols, rows int, cmdline string) *term {
	t.Helper()
	tm := &term{n: n, sock: fmt.Sprintf("pairing-test-%d", time.Now().UnixNano())}
	// The pane stays after the command ends, as a terminal does.
	if _, errOut, err := n.Run("tmux", "-L", tm.sock, "-f", "/dev/null", "new-session", "-d", "-x", fmt.Sprint(cols), "-y", fmt.Sprint(rows),
		"env TERM=xterm-256color "+cmdline+"; sleep 600"); err != nil {
		t.Fatalf("tmux: %v %s", err, errOut)
	}
	t.Cleanup(func() { n.Run("tmux", "-L", tm.sock, "kill-server") })
	return tm
}

// screen is what the terminal shows, one string a row.
func (tm *term) screen() []string {
	out, _, _ := tm.n.Run("tmux", "-L", tm.sock, "capture-pane", "-p")
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

func (tm *term) keys(k ...string) {
	tm.n.Run("tmux", append([]string{"-L", tm.sock, "send-keys"}, k...)...)
}

// waitFor waits until the screen has a row containing s.
func (tm *term) waitFor(t *testing.T, s string) []string {
	t.Helper()
	var rows []string
	lantest.Eventually(t, 15*time.Second, func() error {
		rows = tm.screen()
		for _, r := range rows {
			if strings.Contains(r, s) {
				return nil
			}
		}
		return fmt.Errorf("no row with %q on the screen:\n%s", s, strings.Join(rows, "\n"))
	})
	return rows
}

// qrOnScreen decodes the QR code on the screen (plain half blocks, light
// on dark: NO_COLOR), each cell two modules; the code starts at the first
// row of its light quiet zone, and its columns are that row's.
func qrOnScreen(rows []string) (string, error) {
	for len(rows) > 1 && !strings.HasPrefix(rows[0], strings.Repeat("█", 21)) {
		rows = rows[1:]
	}
	width := len([]rune(rows[0])) - len([]rune(strings.TrimLeft(rows[0], "█")))
	if width < 21 {
		return "", fmt.Errorf("the screen does not start with a QR code's quiet zone:\n%s", strings.Join(rows, "\n"))
	}
	var code []string
	for _, r := range rows {
		rr := []rune(r)
		if len(rr) < width || rr[0] != '█' {
			break
		}
		code = append(code, string(rr[:width]))
	}
	return lantest.Decode(lantest.HalfBlockModules(code))
}

// waitForCode waits for a row with s and a code that reads (a live
// screen is redrawn every second, and a capture may catch it halfway):
// the rows and what the code says.
func (tm *term) waitForCode(t *testing.T, s string) ([]string, string) {
	t.Helper()
	var rows []string
	var text string
	lantest.Eventually(t, 15*time.Second, func() error {
		rows = tm.screen()
		if !hasRow(rows, s) {
			return fmt.Errorf("no row with %q on the screen:\n%s", s, strings.Join(rows, "\n"))
		}
		var err error
		if text, err = qrOnScreen(rows); err != nil {
			return fmt.Errorf("%w; the screen:\n%s", err, strings.Join(rows, "\n"))
		}
		return nil
	})
	return rows, text
}

// hasRow: one row of the screen holds s whole (not wrapped).
func hasRow(rows []string, s string) bool {
	for _, r := range rows {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// TestQRFitsTerminal: on an 80×24 terminal, `pairing qr`, `qr --link`
// and `serve --open` show the whole QR code (it decodes from what is on
// the screen) with their text beside and under it, a line left for the
// prompt; the URL is on one line when the terminal is wide enough, else
// the text says where it is; a device on two networks says which one the
// code is for and how to get the other's. The link's code is live until
// Ctrl-C, and Ctrl-C leaves no live-looking countdown.
func TestQRFitsTerminal(t *testing.T) {
	l := lantest.New(t)
	s1, s2 := l.Segment(), l.Segment()
	a, b := newNode(t, l.Host("a"), rootBin(t)), newNode(t, l.Host("b"), rootBin(t))
	a.Attach(s1, "10.1.0.1/24")
	a.Attach(s2, "10.2.0.1/24")
	b.Attach(s1, "10.1.0.2/24")
	a.serve()
	w := a.qr()
	if len(w.Networks) != 2 {
		t.Fatalf("networks %+v", w.Networks)
	}
	qr := "NO_COLOR=1 " + a.bin + " qr --socket " + a.socket

	tm := newTerm(t, a, 80, 24, qr)
	rows, got := tm.waitForCode(t, "Closes in")
	if got != w.QRURL {
		t.Fatalf("the code on the screen reads %q, want %q", got, w.QRURL)
	}
	// The URL, 99 characters, is above the code: 2 rows of 80, whole.
	if !strings.HasPrefix(strings.Join(rows, ""), w.QRURL) {
		t.Errorf("the URL %s is not above the code:\n%s", w.QRURL, strings.Join(rows, "\n"))
	}
	first, other := w.Networks[0], w.Networks[1]
	for _, want := range []string{"Scan it with your phone's", "'pairing join URL'", "The URL is above the code.", fmt.Sprintf("(%s)", first.Address),
		"pairing qr --address " + other.Address.String()} {
		if !hasRow(rows, want) {
			t.Errorf("no row with %q:\n%s", want, strings.Join(rows, "\n"))
		}
	}
	if len(rows) >= 24 && strings.TrimSpace(rows[23]) != "" {
		t.Errorf("no row left for the prompt:\n%s", strings.Join(rows, "\n"))
	}
	// Fewer rows: the URL is left out, and the text says how to get it.
	short := newTerm(t, a, 80, 23, qr)
	rows, got = short.waitForCode(t, "closes in")
	if got != w.QRURL || !hasRow(rows, "pairing qr --json") {
		t.Errorf("80×23:\n%s", strings.Join(rows, "\n"))
	}

	// A wide terminal has the URL on a line of its own.
	wide := newTerm(t, a, 120, 30, qr)
	rows, got = wide.waitForCode(t, "closes in")
	if !hasRow(rows, w.QRURL) || got != w.QRURL {
		t.Errorf("120 columns: no row with the URL %s:\n%s", w.QRURL, strings.Join(rows, "\n"))
	}

	// qr --link: the link's code, live; Ctrl-C ends it with a line that
	// says so.
	link := newTerm(t, a, 80, 24, "NO_COLOR=1 "+a.bin+" qr --link --socket "+a.socket)
	rows, got = link.waitForCode(t, "next in")
	lw := a.qr("--link")
	if got != lw.LinkURL || !hasRow(rows, "code "+lw.Code) && !hasRow(rows, "code ") {
		t.Fatalf("link: reads %q, want %q:\n%s", got, lw.LinkURL, strings.Join(rows, "\n"))
	}
	link.keys("C-c")
	rows = link.waitFor(t, "stopped showing the code")
	if hasRow(rows, "next in") {
		t.Errorf("a live-looking code after Ctrl-C:\n%s", strings.Join(rows, "\n"))
	}

	// serve --open (make run) on b: the same, and Ctrl-C stops the
	// countdown.
	serve := newTerm(t, b, 80, 24, "NO_COLOR=1 "+b.bin+" serve --open --state-dir "+b.state+" --socket "+b.socket)
	rows, got = serve.waitForCode(t, "closes in")
	bw := b.qr()
	if got != bw.QRURL || !hasRow(rows, "Scan it with your phone's") || !hasRow(rows, "The URL is above the code.") {
		t.Fatalf("serve --open: reads %q, want %q:\n%s", got, bw.QRURL, strings.Join(rows, "\n"))
	}
	// The URL, too wide for a row, is above the code: whole, wrapped by
	// the terminal.
	if !strings.Contains(strings.Join(rows, ""), bw.QRURL) {
		t.Errorf("serve --open: the URL %s is not on the screen:\n%s", bw.QRURL, strings.Join(rows, "\n"))
	}
	serve.keys("C-c")
	rows = serve.waitFor(t, "pairing stopped: its pairing window closed with it")
	if hasRow(rows, "closes in") || hasRow(rows, "Scan it") {
		t.Errorf("a countdown left after Ctrl-C:\n%s", strings.Join(rows, "\n"))
	}
}
