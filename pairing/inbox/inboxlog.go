package inbox

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lanpairing/pairing/internal/atomicfile"
	"github.com/lanpairing/pairing/pairing"
)

// The log of what arrived: one JSON Item a line in ownDir/inbox.jsonl.
const (
	inboxLog = "inbox.jsonl"
	// maxLog bounds the inbox log (texts and file records): past it, the
	// log moves to inbox.jsonl.1 (replacing the one before), so
	// 'pairing inbox' always reads a bounded file.
	maxLog = 4 << 20
)

// journal is the inbox's log: it records, lists, rotates and clears it,
// and moves an older version's log into ownDir (the Inbox's lock held
// for every method).
type journal struct {
	dir    string
	logger *slog.Logger
	ready  bool // ownDir exists and holds the log (see prepare)
}

// own is the path of name in ownDir.
func (j *journal) own(name string) string { return filepath.Join(j.dir, ownDir, name) }

// record appends it to the log, rotating the log past maxLog.
func (j *journal) record(it Item) error {
	if err := j.prepare(); err != nil {
		return err
	}
	path := j.own(inboxLog)
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLog {
		if err := os.Rename(path, path+".1"); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	b, _ := json.Marshal(it)
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	return f.Sync()
}

// list reads the log, oldest first (after prepare; it needs no lock:
// records are appended whole).
func (j *journal) list() ([]Item, error) {
	f, err := os.Open(j.own(inboxLog))
	if errors.Is(err, fs.ErrNotExist) {
		return []Item{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	items := []Item{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 256<<10), 256<<10)
	for sc.Scan() {
		var it Item
		if json.Unmarshal(sc.Bytes(), &it) == nil {
			if it.Kind == "file" && pairing.CheckFileName(it.File) == nil {
				it.Path = filepath.Join(j.dir, it.File)
			}
			items = append(items, it) // a torn last line (crash) is skipped
		}
	}
	return items, sc.Err()
}

// reset empties the log and removes the rotated one.
func (j *journal) reset() error {
	os.Remove(j.own(inboxLog + ".1"))
	// An empty log, not none: a missing one would make prepare look for
	// an older version's.
	return os.WriteFile(j.own(inboxLog), nil, 0o600)
}

// size is what the log and the rotated one take.
func (j *journal) size() int64 {
	var n int64
	for _, name := range []string{inboxLog, inboxLog + ".1"} {
		if info, err := os.Stat(j.own(name)); err == nil {
			n += info.Size()
		}
	}
	return n
}

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
// older version's log there when there is one.
func (j *journal) prepare() error {
	if j.ready {
		return nil
	}
	// The inbox is the group's to read (see Commit), its own files not.
	if err := os.MkdirAll(j.dir, 0o750); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(j.dir, ownDir), 0o700); err != nil {
		return err
	}
	path := j.own(inboxLog)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		j.migrate(filepath.Join(j.dir, inboxLog), path)
		// The log exists from now on, empty or moved: the old place is
		// never read again, so a file received there later stays a file.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		f.Close()
	}
	j.ready = true
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
func (j *journal) migrate(old, path string) {
	log := j.logger
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
	if err := atomicfile.Write(path, b[at:]); err != nil {
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
		var it Item
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
