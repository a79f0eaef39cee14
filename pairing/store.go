package pairing

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
)

// StoreFile is the paired store in the state directory.
const StoreFile = "paired.json"

const (
	storeVersion = 1
	// maxStoreSize bounds what is read: thousands of peers fit.
	maxStoreSize = 4 << 20
)

// Store errors.
var (
	ErrStoreCorrupt = errors.New("paired store is corrupt")
	ErrUnknownPeer  = errors.New("no paired device matches")
	ErrAmbiguous    = errors.New("more than one paired device matches")
	// ErrFingerprintTaken: a renewal names a fingerprint another paired
	// device has (or is renewing to).
	ErrFingerprintTaken = errors.New("that fingerprint belongs to another paired device")
)

// Peer kinds.
const (
	KindDevice  = "device"
	KindBrowser = "browser"
)

// PairedPeer is one paired device.
type PairedPeer struct {
	Fingerprint ident.Fingerprint `json:"fingerprint"`
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	PairedAt    time.Time         `json:"paired_at"`
	LastSeen    time.Time         `json:"last_seen,omitzero"`
	Addresses   []netip.Addr      `json:"addresses"`
	Port        uint16            `json:"port,omitempty"`
	// Next is the certificate a browser renews to: it moves to it (Move)
	// when that certificate first connects, and keeps this one until then.
	Next ident.Fingerprint `json:"next,omitzero"`
}

type storeFile struct {
	Version int          `json:"version"`
	Peers   []PairedPeer `json:"peers"`
}

// Store is the paired-device store: one JSON file, written atomically
// (temp file, fsync, rename), mode 0600. Safe for concurrent use within
// one process; the state directory lock keeps other daemons out.
type Store struct {
	path  string
	mu    sync.Mutex
	peers map[ident.Fingerprint]PairedPeer
}

// OpenStore reads the store in dir (the caller holds its lock). A missing file is an empty store. A
// corrupt one is moved aside (never overwritten) and OpenStore returns an
// empty, usable store together with an error wrapping ErrStoreCorrupt
// that names both files.
func OpenStore(dir string) (*Store, error) {
	s := &Store{path: filepath.Join(dir, StoreFile), peers: map[ident.Fingerprint]PairedPeer{}}
	// Temp files of writes a crash interrupted: the caller holds the state
	// directory lock, so no write is in progress.
	if stale, _ := filepath.Glob(filepath.Join(dir, "."+StoreFile+".tmp*")); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	b, err := readLimited(s.path, maxStoreSize)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err == nil {
		var peers []PairedPeer
		if peers, err = decodeStore(b); err == nil {
			for _, p := range peers {
				s.peers[p.Fingerprint] = p
			}
			return s, nil
		}
	}
	aside := fmt.Sprintf("%s.corrupt-%d", s.path, time.Now().Unix())
	if rerr := os.Rename(s.path, aside); rerr != nil {
		return nil, fmt.Errorf("%w: %s: %v; and it cannot be moved aside: %v", ErrStoreCorrupt, s.path, err, rerr)
	}
	return s, fmt.Errorf("%w: %s: %v; kept as %s, starting with no paired devices", ErrStoreCorrupt, s.path, err, aside)
}

// ReadStore reads the store in dir without changing anything (for
// commands that run without the daemon).
func ReadStore(dir string) ([]PairedPeer, error) {
	path := filepath.Join(dir, StoreFile)
	b, err := readLimited(path, maxStoreSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	peers, err := decodeStore(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrStoreCorrupt, path, err)
	}
	return peers, nil
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%d bytes, more than %d", fi.Size(), max)
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	if err != nil && fi.Size() > 0 {
		return nil, err
	}
	return b, nil
}

// decodeStore parses and checks a store file.
func decodeStore(b []byte) ([]PairedPeer, error) {
	var f storeFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	if f.Version != storeVersion {
		return nil, fmt.Errorf("version %d, want %d", f.Version, storeVersion)
	}
	seen := map[ident.Fingerprint]bool{}
	for _, p := range f.Peers {
		if p.Fingerprint.IsZero() || seen[p.Fingerprint] {
			return nil, fmt.Errorf("peer %q: missing or repeated fingerprint", p.Name)
		}
		if p.ID != p.Fingerprint.ID() {
			return nil, fmt.Errorf("peer %q: id %q does not match its fingerprint", p.Name, p.ID)
		}
		seen[p.Fingerprint] = true
	}
	// A renewal's next certificate is nobody's yet, and only one peer's.
	next := map[ident.Fingerprint]bool{}
	for _, p := range f.Peers {
		if !p.Next.IsZero() && (seen[p.Next] || next[p.Next]) {
			return nil, fmt.Errorf("peer %q: its next fingerprint is another's", p.Name)
		}
		next[p.Next] = true
	}
	return f.Peers, nil
}

// List returns the paired peers sorted by name.
func (s *Store) List() []PairedPeer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedPeers(s.peers)
}

func sortedPeers(m map[ident.Fingerprint]PairedPeer) []PairedPeer {
	out := make([]PairedPeer, 0, len(m))
	for _, p := range m {
		p.Addresses = slices.Clone(p.Addresses)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Get returns the paired peer with fingerprint fp.
func (s *Store) Get(fp ident.Fingerprint) (PairedPeer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.peers[fp]
	return p, ok
}

// Put adds or replaces a peer and writes the store. On a write error the
// store in memory is unchanged too.
func (s *Store) Put(p PairedPeer) error {
	p.ID = p.Fingerprint.ID()
	return s.update(func(m map[ident.Fingerprint]PairedPeer) error { m[p.Fingerprint] = p; return nil })
}

// Remove forgets a peer and writes the store.
func (s *Store) Remove(fp ident.Fingerprint) error {
	return s.update(func(m map[ident.Fingerprint]PairedPeer) error { delete(m, fp); return nil })
}

// SetNext records next as the certificate the paired peer fp renews to
// (see PairedPeer.Next). A fingerprint another peer has or renews to is
// refused with ErrFingerprintTaken.
func (s *Store) SetNext(fp, next ident.Fingerprint) error {
	return s.update(func(m map[ident.Fingerprint]PairedPeer) error {
		p, ok := m[fp]
		if !ok {
			return fmt.Errorf("%w %s", ErrUnknownPeer, fp.ID())
		}
		for k, o := range m {
			if k == next || (k != fp && o.Next == next) {
				return ErrFingerprintTaken
			}
		}
		p.Next = next
		m[fp] = p
		return nil
	})
}

// Renewing returns the paired peer that renews to fp (its Next).
func (s *Store) Renewing(fp ident.Fingerprint) (PairedPeer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fp.IsZero() {
		return PairedPeer{}, false
	}
	for _, p := range s.peers {
		if p.Next == fp {
			return p, true
		}
	}
	return PairedPeer{}, false
}

// Move moves the peer that renews to next onto it, in one write: the
// entry keeps its name, kind and pairing date under the new fingerprint,
// and the old fingerprint is forgotten.
func (s *Store) Move(next ident.Fingerprint) (PairedPeer, error) {
	var moved PairedPeer
	err := s.update(func(m map[ident.Fingerprint]PairedPeer) error {
		for k, p := range m {
			if p.Next == next && !next.IsZero() {
				delete(m, k)
				p.Fingerprint, p.ID, p.Next = next, next.ID(), ident.Fingerprint{}
				m[next] = p
				moved = p
				return nil
			}
		}
		return fmt.Errorf("%w renewing to %s", ErrUnknownPeer, next.ID())
	})
	return moved, err
}

// Replace stores p in place of the peer old, in one write: the device
// that re-paired becomes the one it was (old is forgotten).
func (s *Store) Replace(old ident.Fingerprint, p PairedPeer) error {
	p.ID = p.Fingerprint.ID()
	return s.update(func(m map[ident.Fingerprint]PairedPeer) error {
		if _, ok := m[old]; !ok {
			return fmt.Errorf("%w %s", ErrUnknownPeer, old.ID())
		}
		delete(m, old)
		m[p.Fingerprint] = p
		return nil
	})
}

// update applies f to a copy of the peers and writes the result; when f
// fails, nothing is written and its error is returned.
func (s *Store) update(f func(map[ident.Fingerprint]PairedPeer) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[ident.Fingerprint]PairedPeer, len(s.peers)+1)
	for k, v := range s.peers {
		next[k] = v
	}
	if err := f(next); err != nil {
		return err
	}
	b, err := json.MarshalIndent(storeFile{Version: storeVersion, Peers: sortedPeers(next)}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path, append(b, '\n')); err != nil {
		return fmt.Errorf("write paired store: %w", err)
	}
	s.peers = next
	return nil
}

// Resolve finds the one paired peer that query names; it is the one
// rule for naming a device (send, unpair, rename, the daemon and the
// command line alike). In order:
//   - its fingerprint, or its device ID (dashes and case optional);
//   - its name, case ignored: "kitchen laptop" names "Kitchen Laptop";
//   - a prefix of its name (case ignored) or of its ID, when only one
//     device has it: "anna" names "Anna's phone".
//
// A name or prefix that fits several devices is ErrAmbiguous, listing
// them (two phones both called "browser" are never picked at random); one
// that fits none is ErrUnknownPeer, listing the paired names.
func Resolve(peers []PairedPeer, query string) (PairedPeer, error) {
	norm := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "")) }
	q, lq := norm(query), strings.ToLower(query)
	var named, prefixed []PairedPeer
	for _, p := range peers {
		if p.Fingerprint.String() == strings.ToUpper(query) || norm(p.ID) == q {
			return p, nil
		}
		ln := strings.ToLower(p.Name)
		switch {
		case query == "":
		case ln == lq:
			named = append(named, p)
		case strings.HasPrefix(ln, lq), q != "" && strings.HasPrefix(norm(p.ID), q):
			prefixed = append(prefixed, p)
		}
	}
	matches := prefixed
	if len(named) > 0 {
		matches = named // a whole name wins over another's prefix
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		var names []string
		for _, p := range peers {
			names = append(names, strconv.Quote(p.Name))
		}
		if len(names) == 0 {
			return PairedPeer{}, fmt.Errorf("%w %q: no device is paired yet", ErrUnknownPeer, query)
		}
		return PairedPeer{}, fmt.Errorf("%w %q; paired: %s", ErrUnknownPeer, query, strings.Join(names, ", "))
	}
	var names []string
	for _, m := range matches {
		names = append(names, m.ID+" ("+m.Name+")")
	}
	return PairedPeer{}, fmt.Errorf("%w %q: %s; name one by its ID (or rename one: pairing rename ID NAME)", ErrAmbiguous, query, strings.Join(names, ", "))
}
