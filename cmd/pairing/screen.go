package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

// screen is serve --open's terminal: the QR code of the open window with
// one line under it (the code, if any, and the time left, updated every
// second), and the log lines, which it writes too so that they never
// tear that line. When the window closes or gets a new secret, the old
// code is cleared (when nothing was printed after it) or a line says it
// no longer works, and why.
type screen struct {
	mu      sync.Mutex
	out     io.Writer
	status  func() string // the line under the code; nil: none shown
	qrLines int           // lines of the code on the screen
	after   int           // lines printed since (logs)
	stop    chan struct{}
	now     func() time.Time
}

func newScreen(out io.Writer) *screen { return &screen{out: out, now: time.Now} }

// Write is the log's writer: the status line steps aside for each line.
func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != nil {
		io.WriteString(s.out, "\r\x1b[K")
	}
	n, err := s.out.Write(p)
	s.after += bytes.Count(p, []byte("\n"))
	if s.status != nil {
		io.WriteString(s.out, s.status())
	}
	return n, err
}

// window is the daemon's OnWindow: a new code, or the window closed.
func (s *screen) window(w control.Window, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retire(w.PreviousClosed, open)
	if !open {
		return
	}
	text, err := pairing.QRText(cmp.Or(w.QRURL, w.URL), true)
	if err != nil {
		fmt.Fprintf(s.out, "pairing window open, but no QR code: %v\n", err)
		return
	}
	io.WriteString(s.out, text)
	s.qrLines, s.after = strings.Count(text, "\n"), 0
	s.status = func() string {
		left := max(w.SecretExpires.Sub(s.now()), 0)
		line := fmt.Sprintf("scan to pair with %s · closes in %d:%02d", esc(w.Name), int(left.Minutes()), int(left.Seconds())%60)
		if w.Code != "" {
			line = "code " + w.Code + " · " + line
		}
		return line
	}
	io.WriteString(s.out, s.status())
	s.stop = make(chan struct{})
	go s.tick(s.stop)
}

// retire takes the shown code off the screen: cleared when it is the last
// thing on it, else a line says it no longer works.
func (s *screen) retire(why string, renewed bool) {
	if s.status == nil {
		return
	}
	close(s.stop)
	s.status = nil
	reason := "closed"
	if renewed {
		reason = "replaced by a new one"
	} else if why != "" {
		reason = "closed: " + why
	}
	if s.after == 0 {
		// Nothing below it: erase the code and its line.
		fmt.Fprintf(s.out, "\r\x1b[K\x1b[%dA\x1b[J", s.qrLines)
		fmt.Fprintf(s.out, "pairing window %s ('pairing qr' for a new one)\n", reason)
		return
	}
	fmt.Fprintf(s.out, "\r\x1b[Kthe QR code above no longer works: pairing window %s\n", reason)
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
