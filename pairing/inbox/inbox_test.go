package inbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

func TestInbox(t *testing.T) {
	dir := t.TempDir()
	in := &Inbox{Dir: filepath.Join(dir, "inbox"), MaxFile: 1000, MaxTotal: 2000}
	from := ident.Of([]byte("peer"))
	for _, name := range []string{"../etc/passwd", "a/b", `a\b`, "..", ".hidden", "bad\x00name", ""} {
		if _, err := in.File(from, rtc.Offer{Name: name, Size: 1}); !errors.Is(err, pairing.ErrBadFileName) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if _, err := in.File(from, rtc.Offer{Name: "big", Size: 1001}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	put := func(name, data string) {
		t.Helper()
		w, err := in.File(from, rtc.Offer{Name: name, Size: int64(len(data))})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data))
		if err := w.Commit("sum"); err != nil {
			t.Fatal(err)
		}
	}
	put("a.txt", "one")
	put("a.txt", "two") // never overwrites
	if b, _ := os.ReadFile(filepath.Join(in.Dir, "a.txt")); string(b) != "one" {
		t.Fatalf("a.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(in.Dir, "a (2).txt")); string(b) != "two" {
		t.Fatalf("a (2).txt = %q", b)
	}
	w, _ := in.File(from, rtc.Offer{Name: "aborted", Size: 1})
	w.Abort()
	if err := in.Text(from, "hi"); err != nil {
		t.Fatal(err)
	}
	// A transfer under way reserves its size: a second one that would not
	// fit with it is refused before a byte arrives.
	fill, err := in.File(from, rtc.Offer{Name: "fill", Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.File(from, rtc.Offer{Name: "more", Size: 900}); !errors.Is(err, ErrInboxFull) {
		t.Fatalf("second transfer past the reserved space: %v", err)
	}
	fill.Write(make([]byte, 1000))
	fill.Commit("sum")
	put("fill2", string(make([]byte, 300)))
	if _, err := in.File(from, rtc.Offer{Name: "more", Size: 200}); !errors.Is(err, ErrInboxFull) {
		t.Fatalf("full: %v", err)
	}
	// Texts count against the limit too.
	if err := in.Text(from, string(make([]byte, 300))); !errors.Is(err, ErrInboxFull) {
		t.Fatalf("text into a full inbox: %v", err)
	}
	items, err := in.List()
	if err != nil || len(items) != 5 || items[1].File != "a (2).txt" || items[2].Text != "hi" {
		t.Fatalf("items %+v %v", items, err)
	}
	entries, _ := os.ReadDir(in.Dir)
	for _, e := range entries {
		if e.Name() == "aborted" || filepath.Ext(e.Name()) == ".incoming" {
			t.Fatalf("left behind: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "etc")); err == nil {
		t.Fatal("something was written outside the inbox")
	}
}
