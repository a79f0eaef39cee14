package lantest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var builds sync.Map // flags → *build

type build struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// BuildPairing builds cmd/pairing once per test process (with -race when
// race is true) and returns the binary's path. Call RemoveBuilds from
// TestMain when the tests are done.
func BuildPairing(t testing.TB, race bool) string {
	t.Helper()
	key := "norace"
	if race {
		key = "race"
	}
	v, _ := builds.LoadOrStore(key, &build{})
	b := v.(*build)
	b.once.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			b.err = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		dir, err := os.MkdirTemp("", "pairing-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "pairing")
		args := []string{"build", "-o", b.path}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/pairing")...)
		cmd.Dir = root
		if !race {
			// As `make build` does: a static binary (the race detector needs cgo).
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("build pairing: %v\n%s", b.err, b.out)
	}
	return b.path
}

// RemoveBuilds deletes the binaries BuildPairing made.
func RemoveBuilds() {
	builds.Range(func(_, v any) bool {
		if b := v.(*build); b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
		return true
	})
}
