// Package inbox keeps what paired devices send: the received files in a
// directory, a log of texts and files, the partial files kept for a
// resume, and the size limits; an Inbox is the sessions' rtc.Sink.
package inbox

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// Inbox errors (a bad name is pairing.ErrBadFileName).
var (
	ErrTooLarge  = errors.New("refused: file too large")
	ErrInboxFull = errors.New("refused: inbox full")
)

// Defaults of the inbox, with their reasons.
const (
	// DefaultMaxFile: large enough for photos and videos of a phone.
	DefaultMaxFile = 4 << 30
	// DefaultMaxInbox: a cap so a paired device cannot fill the disk.
	DefaultMaxInbox = 16 << 30
	// ownDir holds the inbox's own files (the log, files being received)
	// inside Dir: a dot-directory, so no received file can be named like
	// it or land in it (pairing.CheckFileName refuses names that start
	// with a dot), on the same file system as Dir (a finished file is
	// linked into place).
	ownDir = ".pairing"
	// oldIncoming: where versions before ownDir kept files being received.
	oldIncoming = ".incoming-"
)

// Item is one thing a paired device sent, as the log keeps it.
type Item struct {
	Kind string    `json:"kind"` // text or file
	From string    `json:"from"` // device ID
	Name string    `json:"from_name,omitempty"`
	At   time.Time `json:"at"`
	Text string    `json:"text,omitempty"`
	File string    `json:"file,omitempty"` // name in the inbox
	// Path is where the file is now (the inbox directory and File);
	// filled in when listed, not stored.
	Path   string `json:"path,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Cleared is what Clear removed.
type Cleared struct {
	Files   int   // received files deleted
	Bytes   int64 // their size
	Texts   int   // texts dropped with the log
	Missing int   // files the log named that were gone already
}

// Inbox keeps what paired devices send: files in Dir (never overwriting
// one), and a log of texts and files in Dir/.pairing, with the files
// being received. It ties its parts together (the log, the partials kept
// for a resume, the transfers under way with their reservations) under
// one lock, and implements rtc.Sink.
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
	log      *journal  // the log of texts and files
	kept     *kept     // the partials kept for a resume
	arriving *arriving // the transfers under way
}

var _ rtc.Sink = (*Inbox)(nil)

// parts builds the parts from the fields at first use (in.mu held).
func (in *Inbox) parts() {
	if in.log != nil {
		return
	}
	logger := in.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	in.arriving = &arriving{active: map[string]*file{}}
	in.log = &journal{dir: in.Dir, logger: logger}
	in.kept = &kept{dir: in.Dir, logger: in.Logger, arriving: in.arriving}
}

func (in *Inbox) name(fp ident.Fingerprint) string {
	if in.NameOf == nil {
		return ""
	}
	return in.NameOf(fp)
}

func (in *Inbox) ttl() time.Duration {
	if in.PartialTTL > 0 {
		return in.PartialTTL
	}
	return DefaultPartialTTL
}

// Text records a text message; texts count against the inbox's size
// limit like files.
func (in *Inbox) Text(from ident.Fingerprint, text string) error {
	it := Item{Kind: "text", From: from.ID(), Name: in.name(from), At: time.Now().UTC(), Text: text}
	in.mu.Lock()
	defer in.mu.Unlock()
	_, maxTotal := in.limits()
	used := in.used()
	if need := int64(len(text)) + 256; used+need > maxTotal {
		return fmt.Errorf("%w: %d bytes used of %d", ErrInboxFull, used, maxTotal)
	}
	return in.log.record(it)
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

// List returns what arrived, oldest first.
func (in *Inbox) List() ([]Item, error) {
	in.mu.Lock()
	in.parts()
	err := in.log.prepare()
	in.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return in.log.list()
}

// Clear deletes the received files the log names (only those: the inbox
// may be a directory people keep other files in) and the log, so the
// inbox is empty; files arriving meanwhile are kept.
func (in *Inbox) Clear() (Cleared, error) {
	var c Cleared
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
	return c, in.log.reset()
}

// Open opens the received file called name for reading: a plain file
// name (pairing.CheckFileName), a regular file in the inbox (not a
// link), so the control socket's 'pairing inbox --get' hands out nothing
// else.
func (in *Inbox) Open(name string) (*os.File, error) {
	if err := pairing.CheckFileName(name); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(in.Dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a received file", pairing.ErrBadFileName, name)
	}
	return f, nil
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
// (journal.prepare).
func (in *Inbox) RemovePartial() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.parts()
	in.log.prepare()
	old, _ := filepath.Glob(filepath.Join(in.Dir, oldIncoming+"*"))
	n := in.kept.sweep(true, in.ttl())
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
	if err := pairing.CheckFileName(o.Name); err != nil {
		return nil, err
	}
	if err := pairing.CheckPath(rel); err != nil {
		return nil, err
	}
	if path.Base(rel) != o.Name {
		return nil, fmt.Errorf("%w: path %q does not end in its name %q", pairing.ErrBadFileName, rel, o.Name)
	}
	in.mu.Lock()
	in.parts()
	if err := in.log.prepare(); err != nil {
		in.mu.Unlock()
		return nil, err
	}
	maxFile, maxTotal := in.limits()
	if size < 0 || size > maxFile {
		in.mu.Unlock()
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, size, maxFile)
	}
	in.kept.sweep(false, in.ttl())
	if in.arriving.supersede(&in.mu, in.Logger, from, o) {
		in.kept.sweep(false, in.ttl())
	}
	w := &file{in: in, from: from, rel: rel, size: size, key: keyOf(from, o)}
	kept := in.kept.find(from, o)
	if kept != nil {
		in.arriving.set(kept.data, w) // its bytes count in the reservation now
	}
	// The files arriving reserve their whole size: two transfers at once
	// cannot both take the last free space. Partials kept for a resume
	// give way, oldest first.
	used := in.used()
	for used+size > maxTotal && in.kept.evictOldest() {
		used = in.used()
	}
	if used+size > maxTotal {
		if kept != nil {
			in.arriving.set(kept.data, nil)
		}
		in.mu.Unlock()
		return nil, fmt.Errorf("%w: %d bytes used or announced of %d, the file needs %d", ErrInboxFull, used, maxTotal, size)
	}
	in.arriving.reserved += size
	var err error
	keptData := ""
	if kept != nil {
		keptData = kept.data
		w.f, err = os.OpenFile(kept.data, os.O_RDWR, 0o600)
		w.meta = kept.meta
	} else {
		w.f, err = os.CreateTemp(in.log.own(""), incomingPrefix+"*")
		if err == nil {
			in.arriving.set(w.f.Name(), w)
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
	in.arriving.set(data, nil)
	in.arriving.reserved -= size
}

// used is what the received files (in folders too), the log, the
// partials kept for a resume and the files arriving take (in.mu held).
func (in *Inbox) used() int64 {
	in.parts()
	n := in.arriving.reserved // the files arriving, by their announced size
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
	n += in.log.size()
	for _, p := range in.kept.list() {
		n += p.bytes
	}
	return n
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
