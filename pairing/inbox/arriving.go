package inbox

import (
	"log/slog"
	"sync"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// arriving are the transfers under way: the partial file each one writes
// and the bytes they reserve (their announced sizes), so two transfers at
// once cannot both take the last free space (the Inbox's lock held for
// every method).
type arriving struct {
	active   map[string]*file // the transfers under way, by partial file
	reserved int64            // bytes announced by the transfers under way
}

// set marks the partial file data as used by w's transfer, or by none
// (w nil).
func (a *arriving) set(data string, w *file) {
	if w != nil {
		a.active[data] = w
	} else {
		delete(a.active, data)
	}
}

// busy reports whether a transfer uses the partial file data.
func (a *arriving) busy(data string) bool {
	_, ok := a.active[data]
	return ok
}

// supersedeWait bounds the wait for a transfer told to stop: it ends at
// its next read or message, at once on a live connection.
const supersedeWait = 5 * time.Second

// supersede stops the transfer under way of the same resumable file from
// the same sender, and waits for it to end and keep its partial: a send
// tried again while the first one's connection hangs (a network that
// came back) takes up what arrived instead of starting over beside it.
// It reports whether it stopped one (mu, the Inbox's lock, held;
// released meanwhile).
func (a *arriving) supersede(mu *sync.Mutex, logger *slog.Logger, from ident.Fingerprint, o rtc.Offer) bool {
	if o.Head == "" {
		return false
	}
	key := keyOf(from, o)
	for data, w := range a.active {
		if w == nil || w.meta == "" || w.key != key {
			continue
		}
		if w.stop != nil {
			go w.stop()
		}
		deadline := time.Now().Add(supersedeWait)
		for a.active[data] == w && time.Now().Before(deadline) {
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
		}
		if logger != nil {
			logger.Info("inbox: a transfer of the same file under way was stopped for the new one", "from", from.ID(), "name", o.Rel())
		}
		return true
	}
	return false
}
