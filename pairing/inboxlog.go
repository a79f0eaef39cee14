package pairing

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Versions before ownDir kept the log as Dir/inbox.jsonl, beside the
// received files, so a paired device that sent a file named inbox.jsonl
// to an inbox that had no log yet (or had just rotated it) made its file
// the log, and 'pairing inbox' listed what the file said. prepare moves
// such a log into ownDir once, and trusts of it only what this daemon
// can tell it wrote.

// plantedMark is the log's own name as a received file's record carries
// it. The daemon writes that record only when a received file took the
// log's place (while the log exists, a file of that name is stored as
// "inbox (2).jsonl"), and a text or name inside a record cannot hold it
// (JSON escapes its quotes): the log was planted when its bytes hold it.
var plantedMark = []byte(`"file":"` + inboxLog + `"`)

// prepare creates ownDir and, the first time, the log in it: moving an
// older version's log there when there is one (in.mu held).
func (in *Inbox) prepare() error {
	if in.ready {
		return nil
	}
	// The inbox is the group's to read (see Commit), its own files not.
	if err := os.MkdirAll(in.Dir, 0o750); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(in.Dir, ownDir), 0o700); err != nil {
		return err
	}
	path := in.own(inboxLog)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		in.migrate(filepath.Join(in.Dir, inboxLog), path)
		// The log exists from now on, empty or moved: the old place is
		// never read again, so a file received there later stays a file.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		f.Close()
	}
	in.ready = true
	return nil
}

// migrate moves the log of an older version from old to path:
//   - a log without a planted record is the daemon's own: it moves whole;
//   - a planted log is the peer's file (its first Size bytes, whose
//     SHA-256 its record holds) followed by what the daemon appended from
//     that record on: that tail moves, and the file is cut back to what
//     the peer sent (the received file its record names);
//   - a planted log whose record cannot be found is not trusted at all:
//     it stays where it is, a received file, and the log starts empty.
//
// A log larger than the rotation allows is not one the daemon wrote and
// stays a file. The older version's inbox.jsonl.1 is left where it is
// (nothing reads it). A crash after the record's file was linked and
// before the record was written leaves no mark; the planted file then
// moves as the log.
func (in *Inbox) migrate(old, path string) {
	log := in.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fi, err := os.Lstat(old)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > 2*maxLog {
		return
	}
	b, err := os.ReadFile(old)
	if err != nil {
		return
	}
	if !bytes.Contains(b, plantedMark) {
		if err := os.Rename(old, path); err != nil {
			log.Warn("inbox: the log of an older version could not move", "from", old, "err", err)
			return
		}
		log.Info("inbox: the log of an older version moved", "from", old, "to", path)
		return
	}
	at := plantedAt(b)
	if at < 0 {
		log.Warn("inbox: the log of an older version was a file a paired device sent; it stays a file and the log starts empty", "file", old)
		return
	}
	if err := writeFileAtomic(path, b[at:]); err != nil {
		log.Warn("inbox: the log of an older version could not move", "from", old, "err", err)
		return
	}
	// Only now: a cut file left behind by a crash before the move would
	// pass for a log the daemon wrote.
	os.Truncate(old, int64(at))
	log.Warn("inbox: the log of an older version began with a file a paired device sent; what the daemon wrote after it moved, the file stays",
		"file", old, "bytes", at)
}

// plantedAt is the offset of the record the daemon wrote for a file that
// took the log's place in b: a file record named inboxLog that begins at
// its own Size, with the SHA-256 of the bytes before it. The planted
// bytes may hold forged records of that form (at smaller offsets), the
// real one comes after them all: the last one that holds is it, and it
// must hold the last mark in b (else the real one did not hold, and a
// forged one is all there is). -1: none.
func plantedAt(b []byte) int {
	at := lastRecord(b)
	if at < 0 || at+bytes.Index(b[at:], plantedMark) != bytes.LastIndex(b, plantedMark) {
		return -1
	}
	return at
}

// lastRecord is the offset of the last record in b that holds as
// plantedAt describes, or -1.
func lastRecord(b []byte) int {
	prefix := []byte(`{"kind":"file"`)
	h := sha256.New()
	hashed, found := 0, -1
	for at := 0; ; {
		i := bytes.Index(b[at:], prefix)
		if i < 0 {
			return found
		}
		at += i
		var it InboxItem
		if json.NewDecoder(bytes.NewReader(b[at:])).Decode(&it) == nil &&
			it.File == inboxLog && it.Size == int64(at) {
			h.Write(b[hashed:at])
			hashed = at
			if hex.EncodeToString(h.Sum(nil)) == it.SHA256 {
				found = at
			}
		}
		at += len(prefix)
	}
}
