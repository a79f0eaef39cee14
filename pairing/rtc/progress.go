package rtc

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// A file transfer must keep moving: every ProgressWindow it has carried at
// least MinProgress more bytes, or it has ended; otherwise the receiver
// ends it, removes the partial file and frees its inbox reservation. The
// same rule holds on every path a file arrives by (the data channel of a
// daemon or a page, and the direct TLS path).
//
// 1 MiB per 30 s is 0.28 Mbit/s: far below any LAN, Wi-Fi or TURN path a
// transfer takes, so no honest sender meets it, while a device that
// trickles a byte now and then holds a reservation (or a connection) for
// 30 s at most, not forever. It also bounds a whole transfer: a file of
// the largest size the inbox takes (4 GiB) may take at most 34 hours.
// The last window of a file must carry its end: a sender that sent every
// byte but never the end (or the sum) is ended too.
const (
	ProgressWindow = 30 * time.Second
	MinProgress    = 1 << 20
)

// progressWindow is ProgressWindow; the package's tests shorten it.
var progressWindow = ProgressWindow

// ErrTooSlow: a transfer broke the progress rule.
var ErrTooSlow = errors.New("transfer too slow: less than 1 MiB in 30 s")

// Progress watches one transfer for the progress rule.
type Progress struct {
	n    atomic.Int64
	stop func()

	mu   sync.Mutex
	t    *time.Timer
	mark int64
	done bool
}

// WatchProgress starts watching a transfer: stop is called once, from
// another goroutine, when a window passes with too little progress.
func WatchProgress(stop func()) *Progress {
	p := &Progress{stop: stop}
	p.mu.Lock()
	p.t = time.AfterFunc(progressWindow, p.tick)
	p.mu.Unlock()
	return p
}

// Add counts n more bytes. A nil Progress counts nothing.
func (p *Progress) Add(n int) {
	if p != nil {
		p.n.Add(int64(n))
	}
}

// Done ends the watch: the transfer ended (either way).
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	p.t.Stop()
}

func (p *Progress) tick() {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	n := p.n.Load()
	if n-p.mark < MinProgress {
		p.done = true
		p.mu.Unlock()
		p.stop() // outside p.mu: stop may take the caller's locks, which call Done
		return
	}
	p.mark = n
	p.t.Reset(progressWindow)
	p.mu.Unlock()
}
