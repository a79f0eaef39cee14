package pairing

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
)

func testPeer(i int, name string) PairedPeer {
	var fp ident.Fingerprint
	fp[0], fp[1] = byte(i), byte(i>>8)
	return PairedPeer{Fingerprint: fp, Name: name, Kind: KindDevice, PairedAt: time.Unix(1_800_000_000, 0).UTC()}
}

func TestStorePutRemoveResolve(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"laptop", "phone", "tablet"} {
		if err := s.Put(testPeer(i+1, n)); err != nil {
			t.Fatal(err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, StoreFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("store mode %v", fi.Mode().Perm())
	}
	again, err := ReadStore(dir)
	if err != nil || len(again) != 3 || again[0].Name != "laptop" {
		t.Fatalf("ReadStore = %+v, %v", again, err)
	}
	phone := testPeer(2, "phone")
	for _, q := range []string{"phone", phone.Fingerprint.ID(), strings.ToLower(phone.Fingerprint.ID()[:9]), strings.ReplaceAll(phone.Fingerprint.ID(), "-", "")} {
		if p, err := Resolve(again, q); err != nil || p.Name != "phone" {
			t.Errorf("Resolve(%q) = %v, %v", q, p.Name, err)
		}
	}
	if _, err := Resolve(again, "nobody"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := Resolve(again, again[0].ID[:1]); !errors.Is(err, ErrAmbiguous) && again[0].ID[0] == again[1].ID[0] {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if err := s.Remove(phone.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if ps, _ := ReadStore(dir); len(ps) != 2 {
		t.Fatalf("after remove: %+v", ps)
	}
}

func TestStoreCorruptKeptAside(t *testing.T) {
	for name, content := range map[string]string{
		"truncated": `{"version":1,"peers":[{"fingerprint":"AB`,
		"garbage":   "\x00\x01not json",
		"bad id":    `{"version":1,"peers":[{"fingerprint":"` + testPeer(1, "x").Fingerprint.String() + `","id":"WRONG","name":"x","kind":"device","paired_at":"2026-01-01T00:00:00Z","addresses":null}]}`,
		"version":   `{"version":7,"peers":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StoreFile)
			os.WriteFile(path, []byte(content), 0o600)
			if _, err := ReadStore(dir); !errors.Is(err, ErrStoreCorrupt) {
				t.Fatalf("ReadStore = %v", err)
			}
			s, err := OpenStore(dir)
			if !errors.Is(err, ErrStoreCorrupt) || s == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("OpenStore = %v, %v", s, err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("corrupt file not kept aside: %v", aside)
			}
			if b, _ := os.ReadFile(aside[0]); string(b) != content {
				t.Fatal("the kept copy differs from the corrupt file")
			}
		})
	}
}

func FuzzStoreDecode(f *testing.F) {
	good, _ := json.Marshal(storeFile{Version: 1, Peers: []PairedPeer{func() PairedPeer { p := testPeer(1, "a"); p.ID = p.Fingerprint.ID(); return p }()}})
	f.Add(good)
	f.Add([]byte(`{"version":1,"peers":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := decodeStore(b)
		if err != nil {
			return
		}
		seen := map[ident.Fingerprint]bool{}
		for _, p := range peers {
			if p.Fingerprint.IsZero() || seen[p.Fingerprint] || p.ID != p.Fingerprint.ID() {
				t.Fatalf("accepted a bad peer: %+v", p)
			}
			seen[p.Fingerprint] = true
		}
	})
}

// TestStoreSurvivesKill kills a process that rewrites the store in a loop,
// again and again at random moments: the file is always a whole version,
// and never goes back.
func TestStoreSurvivesKill(t *testing.T) {
	if os.Getenv("PAIRING_STORE_WRITER") != "" {
		return
	}
	dir := t.TempDir()
	last := -1
	for round := range 25 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStoreWriter$")
		cmd.Env = append(os.Environ(), "PAIRING_STORE_WRITER="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(5+rand.IntN(40)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		peers, err := ReadStore(dir)
		if err != nil {
			t.Fatalf("round %d: store unreadable after kill -9: %v", round, err)
		}
		gen := -1
		if len(peers) > 0 {
			if gen, err = strconv.Atoi(strings.TrimPrefix(peers[0].Name, "gen")); err != nil {
				t.Fatalf("round %d: %+v", round, peers)
			}
		}
		if gen < last {
			t.Fatalf("round %d: generation went back from %d to %d", round, last, gen)
		}
		last = gen
	}
	if last < 0 {
		t.Fatal("the writer never wrote")
	}
	t.Logf("last generation after 25 kills: %d", last)
	// Each writer's OpenStore sweeps what earlier kills left.
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(tmp) > 1 {
		t.Fatalf("%d temp files pile up after kills: %v", len(tmp), tmp)
	}
}

func TestHelperStoreWriter(t *testing.T) {
	dir := os.Getenv("PAIRING_STORE_WRITER")
	if dir == "" {
		t.Skip("helper of TestStoreSurvivesKill")
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := 0
	if ps := s.List(); len(ps) > 0 {
		start, _ = strconv.Atoi(strings.TrimPrefix(ps[0].Name, "gen"))
	}
	for gen := start + 1; ; gen++ {
		if err := s.Put(testPeer(1, fmt.Sprintf("gen%d", gen))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResolveNames: a device is named by its name whatever the case, by a
// unique prefix of its name or ID; a prefix two names share lists both; a
// name nobody has lists the paired names.
func TestResolveNames(t *testing.T) {
	peers := []PairedPeer{testPeer(1, "Anna's phone"), testPeer(2, "Kitchen laptop"), testPeer(3, "Kitchen"), testPeer(4, "kiosk")}
	for i := range peers {
		peers[i].ID = peers[i].Fingerprint.ID()
	}
	for q, want := range map[string]string{
		"anna": "Anna's phone", "ANNA'S PHONE": "Anna's phone", "kitchen laptop": "Kitchen laptop",
		"kitchen": "Kitchen", "kitchen l": "Kitchen laptop", "kio": "kiosk", peers[3].ID[:6]: "kiosk",
	} {
		if p, err := Resolve(peers, q); err != nil || p.Name != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", q, p.Name, err, want)
		}
	}
	_, err := Resolve(peers, "ki")
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "Kitchen laptop") || !strings.Contains(err.Error(), "kiosk") {
		t.Errorf("Resolve(ki) = %v, want ambiguous listing both", err)
	}
	_, err = Resolve(peers, "bob")
	if !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), `"kiosk"`) {
		t.Errorf("Resolve(bob) = %v, want unknown listing the names", err)
	}
	if _, err := Resolve(peers, ""); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Resolve(\"\") = %v", err)
	}
}
