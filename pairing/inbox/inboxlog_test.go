package inbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

var forged = `{"kind":"text","from":"AAAA-BBBB","from_name":"your-bank","at":"2026-01-01T00:00:00Z","text":"call us"}` + "\n"

func line(t *testing.T, it Item) string {
	b, err := json.Marshal(it)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// record is the line an older version appended for a received file.
func record(t *testing.T, name string, content string) string {
	sum := sha256.Sum256([]byte(content))
	return line(t, Item{Kind: "file", From: "PEER-0000", Name: "b", At: time.Now().UTC(), File: name, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])})
}

func TestInboxNamesAndOwnFiles(t *testing.T) {
	in := &Inbox{Dir: t.TempDir()}
	from := ident.Of([]byte("peer"))
	for name, want := range map[string]string{
		"invoice\u202efdp.exe": "U+202E (right-to-left override)",
		"a\u2066b.txt":         "U+2066 (left-to-right isolate)",
		"zero\u200bwidth":      "U+200B (zero width space)",
		"\ufeffbom.txt":        "U+FEFF",
		"esc\x1b[2J":           "U+001B (escape)",
		"c1\u009b2J":           "U+009B",
		"soft\u00adhyphen":     "U+00AD (soft hyphen)",
		".pairing":             "hidden",
		".PAIRING":             "hidden",
	} {
		_, err := in.File(from, rtc.Offer{Name: name, Size: 1})
		if !errors.Is(err, pairing.ErrBadFileName) || !strings.Contains(err.Error(), want) {
			t.Errorf("name %q: %v, want %q", name, err, want)
		}
	}
	// The log's names (any case) and the old partial names are plain
	// files now: they land beside the others and the log is untouched.
	if err := in.Text(from, "real"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"inbox.jsonl", "INBOX.JSONL", "inbox.jsonl.1", "incoming-x", "Inbox.jsonl"} {
		w, err := in.File(from, rtc.Offer{Name: name, Size: int64(len(forged))})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		w.Write([]byte(forged))
		if err := w.Commit("x"); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(in.Dir, name)); string(b) != forged {
			t.Fatalf("%s holds %q", name, b)
		}
	}
	items, err := in.List()
	if err != nil || len(items) != 6 || items[0].Text != "real" {
		t.Fatalf("items %+v %v", items, err)
	}
	for _, it := range items {
		if it.Name == "your-bank" {
			t.Fatalf("forged entry listed: %+v", items)
		}
	}
	// A restart does not take the file named inbox.jsonl for an old log.
	again := &Inbox{Dir: in.Dir}
	again.RemovePartial()
	if items2, _ := again.List(); len(items2) != len(items) {
		t.Fatalf("after a restart: %+v", items2)
	}
}

func TestInboxMovesOldLog(t *testing.T) {
	dir := t.TempDir()
	old := line(t, Item{Kind: "text", From: "PEER-0000", Text: "hello"}) + record(t, "a.txt", "one")
	os.WriteFile(filepath.Join(dir, inboxLog), []byte(old), 0o600)
	os.WriteFile(filepath.Join(dir, ".incoming-123"), []byte("partial"), 0o600)
	in := &Inbox{Dir: dir}
	if n := in.RemovePartial(); n != 1 {
		t.Errorf("removed %d partial files", n)
	}
	items, err := in.List()
	if err != nil || len(items) != 2 || items[0].Text != "hello" || items[1].File != "a.txt" {
		t.Fatalf("items %+v %v", items, err)
	}
	if _, err := os.Stat(filepath.Join(dir, inboxLog)); err == nil {
		t.Fatal("the old log is still in the inbox")
	}
}

func TestInboxPlantedOldLog(t *testing.T) {
	// What a peer sent: a forged text, and a forged record that claims
	// the bytes before it were the planted file (so that the rest would
	// be trusted); without a final newline, so that the daemon's record
	// runs on in the same line.
	head := forged
	planted := head + record(t, inboxLog, head) + forged + `{"kind":"text","text":"no newline"`
	later := line(t, Item{Kind: "text", From: "PEER-0000", Text: "later"})
	for _, c := range []struct {
		name, log string
		want      []string
		file      string
	}{
		{"record verified", planted + record(t, inboxLog, planted) + later, []string{inboxLog, "later"}, planted},
		{"record does not hold", planted + record(t, inboxLog, planted+"x") + later, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, inboxLog)
			os.WriteFile(path, []byte(c.log), 0o600)
			in := &Inbox{Dir: dir}
			items, err := in.List()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.File+it.Text)
				if it.Name == "your-bank" {
					t.Fatalf("forged entry listed: %+v", items)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("items %q, want %q", got, c.want)
			}
			b, _ := os.ReadFile(path)
			if c.file == "" {
				c.file = c.log // not trusted: left as it is
			}
			if string(b) != c.file {
				t.Fatalf("the received file holds %q, want %q", b, c.file)
			}
		})
	}
}
