package pairing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A browser's renewal: the next certificate is recorded, the entry moves
// to it in one write, and the old fingerprint is gone; a re-paired
// browser replaces its old entry in one write.
func TestStoreRenewMoveReplace(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	phone, other := testPeer(1, "phone"), testPeer(2, "laptop")
	phone.Kind = KindBrowser
	for _, p := range []PairedPeer{phone, other} {
		if err := s.Put(p); err != nil {
			t.Fatal(err)
		}
	}
	next := testPeer(3, "").Fingerprint
	if err := s.SetNext(phone.Fingerprint, other.Fingerprint); !errors.Is(err, ErrFingerprintTaken) {
		t.Errorf("next = another peer's fingerprint: %v", err)
	}
	if err := s.SetNext(other.Fingerprint, next); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNext(phone.Fingerprint, next); !errors.Is(err, ErrFingerprintTaken) {
		t.Errorf("next = another peer's next: %v", err)
	}
	if err := s.SetNext(other.Fingerprint, testPeer(9, "").Fingerprint); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNext(phone.Fingerprint, next); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNext(testPeer(7, "").Fingerprint, testPeer(8, "").Fingerprint); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("unknown peer: %v", err)
	}
	// Until the new certificate connects, the old one is the device.
	if _, ok := s.Get(phone.Fingerprint); !ok {
		t.Fatal("the old fingerprint went before the move")
	}
	if p, ok := s.Renewing(next); !ok || p.Fingerprint != phone.Fingerprint {
		t.Fatalf("Renewing = %+v, %v", p, ok)
	}
	moved, err := s.Move(next)
	if err != nil || moved.Fingerprint != next || moved.Name != "phone" || !moved.Next.IsZero() || moved.ID != next.ID() {
		t.Fatalf("Move = %+v, %v", moved, err)
	}
	ps, err := ReadStore(dir)
	if err != nil || len(ps) != 2 {
		t.Fatalf("after the move: %+v, %v", ps, err)
	}
	for _, p := range ps {
		if p.Fingerprint == phone.Fingerprint {
			t.Errorf("the old fingerprint is still paired")
		}
	}
	if _, err := s.Move(next); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("a second move: %v", err)
	}
	// Re-pairing as the device it was.
	fresh := testPeer(4, "new phone")
	fresh.Kind = KindBrowser
	if err := s.Replace(next, fresh); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(next, fresh); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("replacing a gone entry: %v", err)
	}
	ps, _ = ReadStore(dir)
	if len(ps) != 2 || (ps[0].Name != "new phone" && ps[1].Name != "new phone") {
		t.Fatalf("after replace: %+v", ps)
	}
	// A store where one next is another peer's fingerprint is corrupt.
	b, _ := os.ReadFile(filepath.Join(dir, StoreFile))
	bad := strings.Replace(string(b), testPeer(9, "").Fingerprint.String(), fresh.Fingerprint.String(), 1)
	if _, err := decodeStore([]byte(bad)); err == nil {
		t.Errorf("a next that is another peer's fingerprint was accepted")
	}
}
