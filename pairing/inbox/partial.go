package inbox

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lanpairing/pairing/internal/atomicfile"
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

const (
	metaPrefix     = "resume-"
	incomingPrefix = "incoming-"
)

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
	return atomicfile.Write(path, b)
}

// partial is a partial file in ownDir that no transfer uses now.
type partial struct {
	data, meta string
	m          *partialMeta // nil: not resumable (a crash's leftover)
	bytes      int64
	mod        time.Time
}

// kept are the partials kept for a resume in ownDir: it lists, finds,
// sweeps and evicts them (the Inbox's lock held for every method).
type kept struct {
	dir      string
	logger   *slog.Logger // nil: nothing is logged
	arriving *arriving    // whose partials are in use
}

func (k *kept) own(name string) string { return filepath.Join(k.dir, ownDir, name) }

// list lists the partial files no transfer uses now.
func (k *kept) list() []partial {
	names, _ := filepath.Glob(k.own(incomingPrefix + "*"))
	var out []partial
	for _, data := range names {
		if k.arriving.busy(data) {
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

// sweep removes the expired partials, and with all those that cannot be
// resumed (a crash's leftovers: only at start, when no transfer runs),
// and metadata without its partial. It returns how many partials it
// removed; ttl is how long a partial stays after its last byte.
func (k *kept) sweep(all bool, ttl time.Duration) int {
	n := 0
	for _, p := range k.list() {
		if (p.m == nil && all) || time.Since(p.mod) > ttl {
			if os.Remove(p.data) == nil {
				n++
			}
			os.Remove(p.meta)
		}
	}
	metas, _ := filepath.Glob(k.own(metaPrefix + "*.json"))
	for _, m := range metas {
		data := k.own(incomingPrefix + strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), metaPrefix), ".json"))
		if _, err := os.Lstat(data); errors.Is(err, os.ErrNotExist) {
			os.Remove(m)
		}
	}
	return n
}

func keyOf(from ident.Fingerprint, o rtc.Offer) partialMeta {
	return partialMeta{From: from.String(), Path: o.Rel(), Size: o.Size, Head: o.Head}
}

// find is the kept partial of o from from, or nil.
func (k *kept) find(from ident.Fingerprint, o rtc.Offer) *partial {
	if o.Head == "" {
		return nil
	}
	for _, p := range k.list() {
		if p.m != nil && p.m.From == from.String() && p.m.Path == o.Rel() && p.m.Size == o.Size && p.m.Head == o.Head {
			return &p
		}
	}
	return nil
}

// evictOldest removes the oldest partial no transfer uses, to make room;
// false when there is none.
func (k *kept) evictOldest() bool {
	ps := k.list()
	if len(ps) == 0 {
		return false
	}
	oldest := slices.MinFunc(ps, func(a, b partial) int { return a.mod.Compare(b.mod) })
	os.Remove(oldest.data)
	os.Remove(oldest.meta)
	if k.logger != nil {
		k.logger.Info("inbox: partial file removed to make room", "bytes", oldest.bytes)
	}
	return true
}
