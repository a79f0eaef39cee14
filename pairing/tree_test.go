package pairing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTree: a folder's files come with their relative paths under the
// folder's name; a name the receiver would refuse, a link, or a folder
// without a file is refused before anything is sent.
func TestTree(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(rel), 0o644)
	}
	mk("photos/2024/a.jpg")
	mk("photos/b.jpg")
	mk("one.txt")
	files, err := Tree([]string{filepath.Join(dir, "photos"), filepath.Join(dir, "one.txt")})
	var rels []string
	for _, f := range files {
		rels = append(rels, f.Rel)
	}
	if err != nil || strings.Join(rels, ",") != "photos/2024/a.jpg,photos/b.jpg,one.txt" {
		t.Fatalf("tree: %q %v", rels, err)
	}
	mk("bad/invoice\u202efdp.exe")
	mk("hidden/.git/config")
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	os.MkdirAll(filepath.Join(dir, "link"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link", "passwd"))
	for _, bad := range []string{"bad", "hidden"} {
		if _, err := Tree([]string{filepath.Join(dir, bad)}); !errors.Is(err, ErrBadFileName) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, bad := range []string{"empty", "link"} {
		if _, err := Tree([]string{filepath.Join(dir, bad)}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
