package main

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lanpairing/pairing/internal/control"
)

// screen is serve --open's terminal: the QR code of the open window with
// its text beside it and one line under it (the code, if any, and the
// time left, updated every second), kept at the bottom of the terminal:
// a log line is written above it (the code is taken off, the line
// written, the code drawn again), so that the logs never push the code's
// top off the screen. When the window closes, gets a new secret or the
// daemon stops, the code is taken off and a line says why.
type screen struct {
	mu     sync.Mutex
	out    io.Writer
	status func() string // the line under the code; nil: none shown
	qr     string        // the code and its text, as drawn
	up     int           // terminal rows of qr (the status line's are not)
	stop   chan struct{}
	now    func() time.Time
	cols   int  // the terminal's width
	rows   int  // and height
	color  bool // paint the code black on white (not with NO_COLOR)
}

func newScreen(out io.Writer, cols, rows int, color bool) *screen {
	return &screen{out: out, now: time.Now, cols: cmp.Or(cols, termCols), rows: cmp.Or(rows, termRows), color: color}
}

// Write is the log's writer: each line goes above the code.
func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
	n, err := s.out.Write(p)
	s.draw()
	return n, err
}

// erase takes the code and its status line off the screen (s.mu held).
func (s *screen) erase() {
	if s.status != nil {
		fmt.Fprintf(s.out, "\r\x1b[K\x1b[%dA\x1b[J", s.up)
	}
}

// draw puts the code and its status line back (s.mu held).
func (s *screen) draw() {
	if s.status != nil {
		io.WriteString(s.out, s.qr+s.status())
	}
}

// window is the daemon's OnWindow: a new code, or the window closed.
func (s *screen) window(w control.Window, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retire(w.PreviousClosed, open)
	if !open {
		return
	}
	url := cmp.Or(w.QRURL, w.URL)
	text, shown, err := qrLayout(url, s.color, s.cols, windowText(w, false, urlNowhere))
	if err != nil {
		fmt.Fprintf(s.out, "pairing window open, but no QR code: %v\n", err)
		return
	}
	up := strings.Count(text, "\n")
	urlRows := (utf8.RuneCountInString(esc(url)) + s.cols - 1) / s.cols
	switch {
	case shown:
		text, _, _ = qrLayout(url, s.color, s.cols, windowText(w, false, urlBelow))
	case up+urlRows+1 <= s.rows:
		// Too wide for a line under the code, but the terminal has the
		// rows for it above (wrapped by the terminal: 2 rows of 80 for
		// an IPv4 URL, with the 21 of the code and the status line: 24).
		text, _, _ = qrLayout(url, s.color, s.cols, windowText(w, false, urlAbove))
		text = esc(url) + "\n" + text
		up += urlRows
	}
	s.up = up
	s.qr = text
	s.status = func() string {
		line := "closes in " + left(w.SecretExpires, s.now()) + ", or once a device paired"
		if w.Code != "" {
			line = "code " + w.Code + " · " + line
		}
		return line
	}
	s.draw()
	s.stop = make(chan struct{})
	go s.tick(s.stop)
}

// close is the daemon stopping: the code is taken off (a countdown left
// on the screen would look live) and a line says why.
func (s *screen) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == nil {
		return
	}
	s.erase()
	close(s.stop)
	s.status = nil
	io.WriteString(s.out, "pairing stopped: its pairing window closed with it\n")
}

// retire takes the shown code off the screen and says why (s.mu held).
func (s *screen) retire(why string, renewed bool) {
	if s.status == nil {
		return
	}
	s.erase()
	close(s.stop)
	s.status = nil
	reason := "closed"
	if renewed {
		reason = "replaced by a new one"
	} else if why != "" {
		reason = "closed: " + why
	}
	fmt.Fprintf(s.out, "pairing window %s ('pairing qr' for a new one)\n", reason)
}

func (s *screen) tick(stop chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.mu.Lock()
			if s.status != nil {
				io.WriteString(s.out, "\r\x1b[K"+s.status())
			}
			s.mu.Unlock()
		}
	}
}
