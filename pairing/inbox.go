package pairing

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/termsafe"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// Inbox errors.
var (
	ErrBadFileName = errors.New("refused: not a plain file name")
	ErrTooLarge    = errors.New("refused: file too large")
	ErrInboxFull   = errors.New("refused: inbox full")
)

// Defaults of the inbox, with their reasons.
const (
	// DefaultMaxFile: large enough for photos and videos of a phone.
	DefaultMaxFile = 4 << 30
	// DefaultMaxInbox: a cap so a paired device cannot fill the disk.
	DefaultMaxInbox = 16 << 30
	// ownDir holds the inbox's own files (the log, files being received)
	// inside Dir: a dot-directory, so no received file can be named like
	// it or land in it (CheckFileName refuses names that start with a dot),
	// on the same file system as Dir (a finished file is linked into
	// place).
	ownDir   = ".pairing"
	inboxLog = "inbox.jsonl"
	// maxLog bounds the inbox log (texts and file records): past it, the
	// log moves to inbox.jsonl.1 (replacing the one before), so
	// 'pairing inbox' always reads a bounded file.
	maxLog         = 4 << 20
	incomingPrefix = "incoming-"
	// oldIncoming: where versions before ownDir kept files being received.
	oldIncoming = ".incoming-"
	maxNameLen  = 200
)

// InboxItem is one thing a paired device sent.
type InboxItem = control.InboxItem

// Inbox keeps what paired devices send: files in Dir (never overwriting
// one), and a log of texts and files in Dir/.pairing, with the files
// being received. It implements rtc.Sink.
type Inbox struct {
	Dir      string
	MaxFile  int64
	MaxTotal int64
	// NameOf names a device for the log.
	NameOf func(ident.Fingerprint) string
	// Logger tells what the move of an older version's log did (nil:
	// nothing is logged).
	Logger *slog.Logger

	// PartialTTL is how long a partial kept for a resume stays after its
	// last byte (0: DefaultPartialTTL).
	PartialTTL time.Duration

	mu       sync.Mutex
	reserved int64                 // bytes announced by the transfers under way
	active   map[string]*inboxFile // the transfers under way, by partial file
	ready    bool                  // ownDir exists and holds the log (see prepare)
}

var _ rtc.Sink = (*Inbox)(nil)

func (in *Inbox) name(fp ident.Fingerprint) string {
	if in.NameOf == nil {
		return ""
	}
	return in.NameOf(fp)
}

// Text records a text message; texts count against the inbox's size
// limit like files.
func (in *Inbox) Text(from ident.Fingerprint, text string) error {
	it := InboxItem{Kind: "text", From: from.ID(), Name: in.name(from), At: time.Now().UTC(), Text: text}
	in.mu.Lock()
	_, maxTotal := in.limits()
	used := in.used()
	in.mu.Unlock()
	if need := int64(len(text)) + 256; used+need > maxTotal {
		return fmt.Errorf("%w: %d bytes used of %d", ErrInboxFull, used, maxTotal)
	}
	return in.record(it)
}

// limits are the size limits, defaults filled in (in.mu held).
func (in *Inbox) limits() (maxFile, maxTotal int64) {
	maxFile, maxTotal = in.MaxFile, in.MaxTotal
	if maxFile == 0 {
		maxFile = DefaultMaxFile
	}
	if maxTotal == 0 {
		maxTotal = DefaultMaxInbox
	}
	return maxFile, maxTotal
}

func (in *Inbox) record(it InboxItem) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.prepare(); err != nil {
		return err
	}
	path := in.own(inboxLog)
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

// List returns what arrived, oldest first.
func (in *Inbox) List() ([]InboxItem, error) {
	in.mu.Lock()
	err := in.prepare()
	in.mu.Unlock()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(in.own(inboxLog))
	if errors.Is(err, fs.ErrNotExist) {
		return []InboxItem{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	items := []InboxItem{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 256<<10), 256<<10)
	for sc.Scan() {
		var it InboxItem
		if json.Unmarshal(sc.Bytes(), &it) == nil {
			if it.Kind == "file" && CheckFileName(it.File) == nil {
				it.Path = filepath.Join(in.Dir, it.File)
			}
			items = append(items, it) // a torn last line (crash) is skipped
		}
	}
	return items, sc.Err()
}

// Clear deletes the received files the log names (only those: the inbox
// may be a directory people keep other files in) and the log, so the
// inbox is empty; files arriving meanwhile are kept.
func (in *Inbox) Clear() (control.InboxCleared, error) {
	var c control.InboxCleared
	items, err := in.List()
	if err != nil {
		return c, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, it := range items {
		if it.Kind != "file" {
			c.Texts++
			continue
		}
		if it.Path == "" {
			continue // a name the daemon would not have written
		}
		fi, err := os.Lstat(it.Path)
		if err != nil || !fi.Mode().IsRegular() {
			c.Missing++
			continue
		}
		if err := os.Remove(it.Path); err != nil {
			return c, err
		}
		c.Files++
		c.Bytes += fi.Size()
	}
	os.Remove(in.own(inboxLog + ".1"))
	// An empty log, not none: a missing one would make prepare look for
	// an older version's.
	if err := os.WriteFile(in.own(inboxLog), nil, 0o600); err != nil {
		return c, err
	}
	return c, nil
}

// Open opens the received file called name for reading: a plain file
// name (CheckFileName), a regular file in the inbox (not a link), so the
// control socket's 'pairing inbox --get' hands out nothing else.
func (in *Inbox) Open(name string) (*os.File, error) {
	if err := CheckFileName(name); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(in.Dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a received file", ErrBadFileName, name)
	}
	return f, nil
}

// CheckFileName accepts only a plain file name: not empty, at most 200
// bytes, no directory or parent reference, not hidden (a leading dot:
// the inbox's own files are in such a directory), and no control or
// format character (termsafe's rule, the one for device names too: a
// right-to-left override makes "invoice<U+202E>fdp.exe" read as
// "invoiceexe.pdf"). The error says which rule the name broke.
func CheckFileName(name string) error {
	var why string
	switch {
	case name == "" || name == "." || name == "..":
		why = "not a file name"
	case len(name) > maxNameLen:
		why = fmt.Sprintf("longer than %d bytes", maxNameLen)
	case strings.ContainsAny(name, `/\`):
		why = "names a directory"
	case strings.HasPrefix(name, "."):
		why = "hidden (starts with a dot)"
	default:
		err := termsafe.Check(name)
		if err == nil {
			return nil
		}
		why = err.Error()
	}
	return fmt.Errorf("%w: %q %s", ErrBadFileName, name, why)
}

// SetLimits changes the size limits (0: the default) for the next files.
func (in *Inbox) SetLimits(maxFile, maxTotal int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.MaxFile, in.MaxTotal = maxFile, maxTotal
}

// RemovePartial removes the partial files a crash left behind (files
// being received live in ownDir until complete), except those kept for a
// resume that have not expired (see partial.go). It returns how many it
// removed. Called at start, it also moves the log of an older version
// (prepare).
func (in *Inbox) RemovePartial() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.prepare()
	old, _ := filepath.Glob(filepath.Join(in.Dir, oldIncoming+"*"))
	n := in.sweep(true)
	for _, p := range old {
		if os.Remove(p) == nil {
			n++
		}
	}
	return n
}

// File starts receiving a file: checked path, size within the limits. A
// partial kept from a broken transfer of the same file (same sender,
// path, size and head) is taken up again: Have says how much of it is
// there.
func (in *Inbox) File(from ident.Fingerprint, o rtc.Offer) (rtc.FileWriter, error) {
	rel, size := o.Rel(), o.Size
	if err := CheckFileName(o.Name); err != nil {
		return nil, err
	}
	if err := CheckPath(rel); err != nil {
		return nil, err
	}
	if path.Base(rel) != o.Name {
		return nil, fmt.Errorf("%w: path %q does not end in its name %q", ErrBadFileName, rel, o.Name)
	}
	in.mu.Lock()
	if err := in.prepare(); err != nil {
		in.mu.Unlock()
		return nil, err
	}
	maxFile, maxTotal := in.limits()
	if size < 0 || size > maxFile {
		in.mu.Unlock()
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, size, maxFile)
	}
	in.sweep(false)
	if in.supersede(from, o) {
		in.sweep(false)
	}
	w := &inboxFile{in: in, from: from, rel: rel, size: size, key: keyOf(from, o)}
	kept := in.find(from, o)
	if kept != nil {
		in.setActive(kept.data, w) // its bytes count in the reservation now
	}
	// The files arriving reserve their whole size: two transfers at once
	// cannot both take the last free space. Partials kept for a resume
	// give way, oldest first.
	used := in.used()
	for used+size > maxTotal && in.evictOldest() {
		used = in.used()
	}
	if used+size > maxTotal {
		if kept != nil {
			in.setActive(kept.data, nil)
		}
		in.mu.Unlock()
		return nil, fmt.Errorf("%w: %d bytes used or announced of %d, the file needs %d", ErrInboxFull, used, maxTotal, size)
	}
	in.reserved += size
	var err error
	keptData := ""
	if kept != nil {
		keptData = kept.data
		w.f, err = os.OpenFile(kept.data, os.O_RDWR, 0o600)
		w.meta = kept.meta
	} else {
		w.f, err = os.CreateTemp(in.own(""), incomingPrefix+"*")
		if err == nil {
			in.setActive(w.f.Name(), w)
			if o.Head != "" {
				w.meta = metaOf(w.f.Name())
				err = writeMeta(w.meta, keyOf(from, o))
			}
		}
	}
	in.mu.Unlock()
	if err != nil {
		if w.f != nil {
			w.Abort()
		} else {
			in.release(keptData, size)
		}
		return nil, err
	}
	w.have, w.h = w.readBack()
	return w, nil
}

// release ends a transfer's claims: its partial is no longer active, its
// reservation is free.
func (in *Inbox) release(data string, size int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.setActive(data, nil)
	in.reserved -= size
}

// setActive marks the partial file data as used by w's transfer, or by
// none (w nil) (in.mu held).
func (in *Inbox) setActive(data string, w *inboxFile) {
	if in.active == nil {
		in.active = map[string]*inboxFile{}
	}
	if w != nil {
		in.active[data] = w
	} else {
		delete(in.active, data)
	}
}

// used is what the received files (in folders too), the log, the
// partials kept for a resume and the files arriving take (in.mu held).
func (in *Inbox) used() int64 {
	n := in.reserved // the files arriving, by their announced size
	filepath.WalkDir(in.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && p == filepath.Join(in.Dir, ownDir) {
			return filepath.SkipDir
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	for _, name := range []string{inboxLog, inboxLog + ".1"} {
		if info, err := os.Stat(in.own(name)); err == nil {
			n += info.Size()
		}
	}
	for _, p := range in.partials() {
		n += p.bytes
	}
	return n
}

// own is the path of name in ownDir.
func (in *Inbox) own(name string) string { return filepath.Join(in.Dir, ownDir, name) }

type inboxFile struct {
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

func (w *inboxFile) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *inboxFile) Have() (int64, hash.Hash) { return w.have, w.h }

func (w *inboxFile) OnStop(stop func()) {
	w.in.mu.Lock()
	defer w.in.mu.Unlock()
	w.stop = stop
}

// readBack hashes the bytes a kept partial holds, from disk: the prefix
// the sender must match (and the start of the whole file's SHA-256). A
// partial longer than the file, or unreadable, starts again empty.
func (w *inboxFile) readBack() (int64, hash.Hash) {
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
func (w *inboxFile) Abort() {
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
func (w *inboxFile) Suspend() {
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
func (w *inboxFile) Commit(sum string) (err error) {
	err = errors.New("the file ended already")
	w.end.Do(func() { err = w.commit(sum) })
	return err
}

func (w *inboxFile) commit(sum string) error {
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
	return w.in.record(InboxItem{Kind: "file", From: w.from.ID(), Name: w.in.name(w.from), At: time.Now().UTC(), File: final, Size: w.size, SHA256: sum})
}

// place links the finished file tmp (in ownDir) at rel inside Dir,
// creating its folders (0700, as the inbox's own), never following a
// link out of Dir (os.Root) and never replacing a file: "name (2).ext"
// and so on when rel exists. It returns where the file went, relative.
func (in *Inbox) place(tmp, rel string) (string, error) {
	root, err := os.OpenRoot(in.Dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	dir, name := path.Split(rel)
	if dir != "" {
		if err := root.MkdirAll(strings.TrimSuffix(dir, "/"), 0o700); err != nil {
			return "", err
		}
	}
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	final := rel
	for i := 2; ; i++ {
		err := root.Link(path.Join(ownDir, filepath.Base(tmp)), final)
		if err == nil {
			return final, nil
		}
		if !errors.Is(err, fs.ErrExist) || i > 1000 {
			return "", err
		}
		final = dir + fmt.Sprintf("%s (%d)%s", base, i, ext)
	}
}
