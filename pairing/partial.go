package pairing

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// Partials kept for a resume. A file offered with a head hash (see
// rtc.Offer) is resumable: its partial, ownDir/incoming-X, has its key
// beside it in ownDir/resume-X.json (sender, path, size, head). When the
// transfer breaks off, both stay; the next offer of the same key takes
// the partial up again, after the sender matched the SHA-256 of its
// bytes. They count against the inbox's size limit, give way (oldest
// first) to a file that would not fit otherwise, and are removed
// DefaultPartialTTL after their last byte: at start (RemovePartial) and
// at every offer, the only moment they could matter (an offer is what
// adds a partial or needs room).

// DefaultPartialTTL: a day covers a laptop closed overnight or a phone
// out of the house, and bounds what a device's abandoned sends hold.
const DefaultPartialTTL = 24 * time.Hour

// MaxPathDepth bounds the components of a path in a folder sent: deeper
// than photo, music or source trees go, shallow enough for any file
// system's path length with 200-byte names.
const MaxPathDepth = 16

const metaPrefix = "resume-"

// partialMeta is the key of a partial kept for a resume.
type partialMeta struct {
	From string `json:"from"` // the sender's fingerprint
	Path string `json:"path"`
	Size int64  `json:"size"`
	Head string `json:"head"`
}

// metaOf is the metadata file of the partial data.
func metaOf(data string) string {
	return filepath.Join(filepath.Dir(data), metaPrefix+strings.TrimPrefix(filepath.Base(data), incomingPrefix)+".json")
}

func writeMeta(path string, m partialMeta) error {
	b, _ := json.Marshal(m)
	return writeFileAtomic(path, b)
}

// partial is a partial file in ownDir that no transfer uses now.
type partial struct {
	data, meta string
	m          *partialMeta // nil: not resumable (a crash's leftover)
	bytes      int64
	mod        time.Time
}

// partials lists the partial files no transfer uses now (in.mu held).
func (in *Inbox) partials() []partial {
	names, _ := filepath.Glob(in.own(incomingPrefix + "*"))
	var out []partial
	for _, data := range names {
		if _, busy := in.active[data]; busy {
			continue
		}
		fi, err := os.Lstat(data)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		p := partial{data: data, meta: metaOf(data), bytes: fi.Size(), mod: fi.ModTime()}
		if b, err := os.ReadFile(p.meta); err == nil {
			var m partialMeta
			if json.Unmarshal(b, &m) == nil && m.Size >= fi.Size() {
				p.m = &m
			}
		}
		out = append(out, p)
	}
	return out
}

func (in *Inbox) ttl() time.Duration {
	if in.PartialTTL > 0 {
		return in.PartialTTL
	}
	return DefaultPartialTTL
}

// sweep removes the expired partials, and with all those that cannot be
// resumed (a crash's leftovers: only at start, when no transfer runs),
// and metadata without its partial. It returns how many partials it
// removed (in.mu held).
func (in *Inbox) sweep(all bool) int {
	n := 0
	for _, p := range in.partials() {
		if (p.m == nil && all) || time.Since(p.mod) > in.ttl() {
			if os.Remove(p.data) == nil {
				n++
			}
			os.Remove(p.meta)
		}
	}
	metas, _ := filepath.Glob(in.own(metaPrefix + "*.json"))
	for _, m := range metas {
		data := in.own(incomingPrefix + strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), metaPrefix), ".json"))
		if _, err := os.Lstat(data); errors.Is(err, os.ErrNotExist) {
			os.Remove(m)
		}
	}
	return n
}

func keyOf(from ident.Fingerprint, o rtc.Offer) partialMeta {
	return partialMeta{From: from.String(), Path: o.Rel(), Size: o.Size, Head: o.Head}
}

// supersedeWait bounds the wait for a transfer told to stop: it ends at
// its next read or message, at once on a live connection.
const supersedeWait = 5 * time.Second

// supersede stops the transfer under way of the same resumable file from
// the same sender, and waits for it to end and keep its partial: a send
// tried again while the first one's connection hangs (a network that
// came back) takes up what arrived instead of starting over beside it.
// It reports whether it stopped one (in.mu held; released meanwhile).
func (in *Inbox) supersede(from ident.Fingerprint, o rtc.Offer) bool {
	if o.Head == "" {
		return false
	}
	key := keyOf(from, o)
	for data, w := range in.active {
		if w == nil || w.meta == "" || w.key != key {
			continue
		}
		if w.stop != nil {
			go w.stop()
		}
		deadline := time.Now().Add(supersedeWait)
		for in.active[data] == w && time.Now().Before(deadline) {
			in.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			in.mu.Lock()
		}
		if in.Logger != nil {
			in.Logger.Info("inbox: a transfer of the same file under way was stopped for the new one", "from", from.ID(), "name", o.Rel())
		}
		return true
	}
	return false
}

// find is the kept partial of o from from, or nil (in.mu held).
func (in *Inbox) find(from ident.Fingerprint, o rtc.Offer) *partial {
	if o.Head == "" {
		return nil
	}
	for _, p := range in.partials() {
		if p.m != nil && p.m.From == from.String() && p.m.Path == o.Rel() && p.m.Size == o.Size && p.m.Head == o.Head {
			return &p
		}
	}
	return nil
}

// evictOldest removes the oldest partial no transfer uses, to make room;
// false when there is none (in.mu held).
func (in *Inbox) evictOldest() bool {
	ps := in.partials()
	if len(ps) == 0 {
		return false
	}
	oldest := slices.MinFunc(ps, func(a, b partial) int { return a.mod.Compare(b.mod) })
	os.Remove(oldest.data)
	os.Remove(oldest.meta)
	if in.Logger != nil {
		in.Logger.Info("inbox: partial file removed to make room", "bytes", oldest.bytes)
	}
	return true
}

// CheckPath accepts a relative path of a file inside a folder sent:
// '/'-separated, not absolute, at most MaxPathDepth components, each one
// a plain file name (CheckFileName: no "..", no ".", no empty or hidden
// component, no control or format character). A plain file name is a
// path of one component.
func CheckPath(rel string) error {
	if strings.HasPrefix(rel, "/") {
		return fmt.Errorf("%w: %q is absolute", ErrBadFileName, rel)
	}
	parts := strings.Split(rel, "/")
	if len(parts) > MaxPathDepth {
		return fmt.Errorf("%w: %q is deeper than %d folders", ErrBadFileName, rel, MaxPathDepth)
	}
	for _, p := range parts {
		if err := CheckFileName(p); err != nil {
			if len(parts) == 1 {
				return err
			}
			return fmt.Errorf("in %q: %w", rel, err)
		}
	}
	return nil
}
