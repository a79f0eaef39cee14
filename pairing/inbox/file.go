package inbox

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"os"
	"sync"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
)

// file is one file being received: the rtc.FileWriter File returns.
type file struct {
	in   *Inbox
	f    *os.File
	key  partialMeta
	stop func() // ends the transfer early (in.mu held to read or set)
	meta string // its resume metadata ("": not resumable)
	from ident.Fingerprint
	rel  string
	size int64
	have int64
	h    hash.Hash
	end  sync.Once
}

func (w *file) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *file) Have() (int64, hash.Hash) { return w.have, w.h }

func (w *file) OnStop(stop func()) {
	w.in.mu.Lock()
	defer w.in.mu.Unlock()
	w.stop = stop
}

// readBack hashes the bytes a kept partial holds, from disk: the prefix
// the sender must match (and the start of the whole file's SHA-256). A
// partial longer than the file, or unreadable, starts again empty.
func (w *file) readBack() (int64, hash.Hash) {
	h := sha256.New()
	fi, err := w.f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, h
	}
	n := fi.Size()
	if n <= w.size {
		if _, err := w.f.Seek(0, io.SeekStart); err == nil {
			if _, err := io.CopyN(h, w.f, n); err == nil {
				return n, h
			}
		}
	}
	w.f.Truncate(0)
	w.f.Seek(0, io.SeekStart)
	return 0, sha256.New()
}

// Abort removes the partial file.
func (w *file) Abort() {
	w.end.Do(func() {
		w.f.Close()
		os.Remove(w.f.Name())
		if w.meta != "" {
			os.Remove(w.meta)
		}
		w.in.release(w.f.Name(), w.size)
	})
}

// Suspend keeps the partial file for a resume when the offer was
// resumable, and removes it otherwise.
func (w *file) Suspend() {
	if w.meta == "" {
		w.Abort()
		return
	}
	w.end.Do(func() {
		w.f.Close()
		now := time.Now()
		os.Chtimes(w.f.Name(), now, now) // its time to live counts from now
		w.in.release(w.f.Name(), w.size)
	})
}

// Commit keeps the file under its path, or "name (2).ext" and so on when
// that exists: a link never replaces an existing file.
func (w *file) Commit(sum string) (err error) {
	err = errors.New("the file ended already")
	w.end.Do(func() { err = w.commit(sum) })
	return err
}

func (w *file) commit(sum string) error {
	tmp := w.f.Name()
	defer os.Remove(tmp)
	if w.meta != "" {
		defer os.Remove(w.meta)
	}
	defer w.in.release(tmp, w.size)
	// Readable by the daemon's group (pairing): people in it may read
	// what arrived (the service's own files stay 0600).
	if err := w.f.Chmod(0o640); err != nil {
		w.f.Close()
		return err
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	final, err := w.in.place(tmp, w.rel)
	if err != nil {
		return err
	}
	it := Item{Kind: "file", From: w.from.ID(), Name: w.in.name(w.from), At: time.Now().UTC(), File: final, Size: w.size, SHA256: sum}
	w.in.mu.Lock()
	defer w.in.mu.Unlock()
	return w.in.log.record(it)
}
