package inbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// TestInboxResume: a resumable partial survives a restart and is taken
// up again by the same offer (not by another sender's, name's, size's
// or head's); its prefix hash is read back from disk; a wrong offer's
// Abort removes it; an expired one goes at start.
func TestInboxResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "inbox")
	from, other := ident.Of([]byte("peer")), ident.Of([]byte("other"))
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	o := rtc.Offer{Name: "a.bin", Path: "photos/2024/a.bin", Size: int64(len(data)), Head: "h1"}
	in := &Inbox{Dir: dir}
	w, err := in.File(from, o)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := w.Have(); n != 0 {
		t.Fatalf("a new file has %d bytes", n)
	}
	w.Write(data[:1200])
	w.Suspend()

	in = &Inbox{Dir: dir} // a restart
	if n := in.RemovePartial(); n != 0 {
		t.Fatalf("the restart removed %d resumable partials", n)
	}
	for _, x := range []struct {
		from ident.Fingerprint
		o    rtc.Offer
	}{{other, o}, {from, rtc.Offer{Name: "a.bin", Size: o.Size, Head: "h1"}}, {from, rtc.Offer{Name: "a.bin", Path: o.Path, Size: o.Size + 1, Head: "h1"}}, {from, rtc.Offer{Name: "a.bin", Path: o.Path, Size: o.Size, Head: "h2"}}} {
		w, err := in.File(x.from, x.o)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := w.Have(); n != 0 {
			t.Fatalf("offer %+v took up the partial of another key", x.o)
		}
		w.Abort()
	}
	w, err = in.File(from, o)
	if err != nil {
		t.Fatal(err)
	}
	n, h := w.Have()
	want := sha256.Sum256(data[:1200])
	if n != 1200 || hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want[:]) {
		t.Fatalf("resumed at %d, prefix %x", n, h.Sum(nil))
	}
	w.Write(data[1200:])
	if err := w.Commit("sum"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "photos", "2024", "a.bin")); err != nil || string(b) != string(data) {
		t.Fatalf("the resumed file differs: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "photos")); fi == nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode: %v", fi)
	}
	items, _ := in.List()
	if len(items) != 1 || items[0].File != "photos/2024/a.bin" {
		t.Fatalf("log: %+v", items)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ownDir, "*-*"))
	if len(left) != 0 {
		t.Fatalf("left in %s: %v", ownDir, left)
	}

	// Abort removes a kept partial too; an expired one goes at start.
	w, _ = in.File(from, o)
	w.Write(data[:10])
	w.Abort()
	w, _ = in.File(from, o)
	if n, _ := w.Have(); n != 0 {
		t.Fatal("an aborted partial was taken up")
	}
	w.Write(data[:10])
	w.Suspend()
	old := time.Now().Add(-25 * time.Hour)
	parts, _ := filepath.Glob(filepath.Join(dir, ownDir, incomingPrefix+"*"))
	for _, p := range parts {
		os.Chtimes(p, old, old)
	}
	if n := (&Inbox{Dir: dir}).RemovePartial(); n != 1 {
		t.Fatalf("expired partials removed: %d", n)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ownDir, "*-*")); len(left) != 0 {
		t.Fatalf("left after expiry: %v", left)
	}
}

// TestInboxPartialQuota: kept partials count against the inbox's limit
// and give way to a file that needs the room.
func TestInboxPartialQuota(t *testing.T) {
	in := &Inbox{Dir: filepath.Join(t.TempDir(), "inbox"), MaxTotal: 2000}
	from := ident.Of([]byte("peer"))
	w, _ := in.File(from, rtc.Offer{Name: "a", Size: 1500, Head: "x"})
	w.Write(make([]byte, 1500))
	w.Suspend()
	in.mu.Lock()
	used := in.used()
	in.mu.Unlock()
	if used < 1500 {
		t.Fatalf("a kept partial of 1500 bytes: used %d", used)
	}
	w, err := in.File(from, rtc.Offer{Name: "b", Size: 1000})
	if err != nil {
		t.Fatalf("a kept partial did not give way: %v", err)
	}
	w.Abort()
	if parts, _ := filepath.Glob(filepath.Join(in.Dir, ownDir, incomingPrefix+"*")); len(parts) != 0 {
		t.Fatalf("partials left: %v", parts)
	}
}

// TestFilePath: the inbox takes only a path CheckPath accepts, ending in
// the offer's name.
func TestFilePath(t *testing.T) {
	in := &Inbox{Dir: filepath.Join(t.TempDir(), "inbox")}
	if _, err := in.File(ident.Of([]byte("p")), rtc.Offer{Name: "b", Path: "a/../b", Size: 1}); !errors.Is(err, pairing.ErrBadFileName) {
		t.Fatalf("a path with ..: %v", err)
	}
	if _, err := in.File(ident.Of([]byte("p")), rtc.Offer{Name: "c", Path: "a/b", Size: 1}); !errors.Is(err, pairing.ErrBadFileName) {
		t.Fatalf("a path not ending in its name: %v", err)
	}
}
