package pairing

import (
	"errors"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, ok := range []string{"a.jpg", "photos/2024/a.jpg"} {
		if err := CheckPath(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "a/../b", "../a", "a//b", "a/", "a/./b", "a/.hidden/b", "a/b\u202ecod.exe", "a\\b/c",
		"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q"} {
		if err := CheckPath(bad); !errors.Is(err, ErrBadFileName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
