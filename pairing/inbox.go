package pairing

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
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

	mu       sync.Mutex
	reserved int64 // bytes announced by the transfers under way
	ready    bool  // ownDir exists and holds the log (see prepare)
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
// being received live in ownDir until complete). It returns how many it
// removed. Called at start, it also moves the log of an older version
// (prepare).
func (in *Inbox) RemovePartial() int {
	in.mu.Lock()
	in.prepare()
	in.mu.Unlock()
	partial, _ := filepath.Glob(in.own(incomingPrefix + "*"))
	old, _ := filepath.Glob(filepath.Join(in.Dir, oldIncoming+"*"))
	n := 0
	partial = append(partial, old...)
	for _, p := range partial {
		if os.Remove(p) == nil {
			n++
		}
	}
	return n
}

// File starts receiving a file: checked name, size within the limits.
func (in *Inbox) File(from ident.Fingerprint, name string, size int64) (rtc.FileWriter, error) {
	if err := CheckFileName(name); err != nil {
		return nil, err
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
	// The files arriving reserve their whole size: two transfers at once
	// cannot both take the last free space.
	if used := in.used(); used+size > maxTotal {
		in.mu.Unlock()
		return nil, fmt.Errorf("%w: %d bytes used or announced of %d, the file needs %d", ErrInboxFull, used, maxTotal, size)
	}
	in.reserved += size
	in.mu.Unlock()
	f, err := os.CreateTemp(in.own(""), incomingPrefix+"*")
	if err != nil {
		in.unreserve(size)
		return nil, err
	}
	return &inboxFile{in: in, f: f, from: from, name: name, size: size}, nil
}

func (in *Inbox) unreserve(n int64) {
	in.mu.Lock()
	in.reserved -= n
	in.mu.Unlock()
}

// used is what the received files, the log and the files arriving take
// (in.mu held).
func (in *Inbox) used() int64 {
	n := in.reserved // the files arriving, by their announced size
	entries, _ := os.ReadDir(in.Dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	for _, name := range []string{inboxLog, inboxLog + ".1"} {
		if info, err := os.Stat(in.own(name)); err == nil {
			n += info.Size()
		}
	}
	return n
}

// own is the path of name in ownDir.
func (in *Inbox) own(name string) string { return filepath.Join(in.Dir, ownDir, name) }

type inboxFile struct {
	in   *Inbox
	f    *os.File
	from ident.Fingerprint
	name string
	size int64
}

func (w *inboxFile) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *inboxFile) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
	w.in.unreserve(w.size)
}

// Commit keeps the file under its name, or "name (2).ext" and so on when
// that exists: a link never replaces an existing file.
func (w *inboxFile) Commit(sum string) error {
	tmp := w.f.Name()
	defer os.Remove(tmp)
	defer w.in.unreserve(w.size)
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
	ext := filepath.Ext(w.name)
	base := strings.TrimSuffix(w.name, ext)
	final := w.name
	for i := 2; ; i++ {
		err := os.Link(tmp, filepath.Join(w.in.Dir, final))
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i > 1000 {
			return err
		}
		final = fmt.Sprintf("%s (%d)%s", base, i, ext)
	}
	return w.in.record(InboxItem{Kind: "file", From: w.from.ID(), Name: w.in.name(w.from), At: time.Now().UTC(), File: final, Size: w.size, SHA256: sum})
}
