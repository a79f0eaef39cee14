package main

import (
	"strings"
	"sync"
	"testing"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

// TestVersionAndSuggestions: --version and version print the version; a
// mistyped command is a usage error that suggests the command meant.
func TestVersionAndSuggestions(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out, errOut strings.Builder
		if code := run(args, &out, &errOut); code != 0 || out.String() != "pairing "+pairing.Version+"\n" {
			t.Errorf("%v: exit %d %q %q", args, code, out.String(), errOut.String())
		}
	}
	var out, errOut strings.Builder
	if code := run([]string{"sned", "kitchen", "hi"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "did you mean 'pairing send'?") {
		t.Errorf("sned: exit %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"xyzzy"}, &out, &errOut); code != 2 || strings.Contains(errOut.String(), "did you mean") || !strings.Contains(errOut.String(), `unknown command "xyzzy"`) {
		t.Errorf("xyzzy: exit %d %q", code, errOut.String())
	}
}

// TestSendResultLine: the rate is left out where it would measure the
// set-up (under 1 MB or 0.2 s), and sizes read as people read them.
func TestSendResultLine(t *testing.T) {
	for _, c := range []struct {
		bytes int64
		ms    float64
		rate  string
		size  string
	}{{1500, 3, "", "1.5 KB"}, {50_000_000, 150, "", "50.0 MB"}, {50_000_000, 1000, " (400 Mbit/s)", "50.0 MB"}, {999, 500, "", "999 bytes"}, {3_200_000_000, 9000, " (2844 Mbit/s)", "3.2 GB"}} {
		res := &control.SendResult{Bytes: c.bytes, DurationMS: c.ms}
		if got := rate(res); got != c.rate {
			t.Errorf("rate(%d bytes, %.0f ms) = %q, want %q", c.bytes, c.ms, got, c.rate)
		}
		if got := humanSize(c.bytes); got != c.size {
			t.Errorf("humanSize(%d) = %q, want %q", c.bytes, got, c.size)
		}
	}
}

// TestProgressEndsBeforeResult: once stop returns, the progress line is
// cleared, so the result line starts on a clean line (not "100%sent …").
func TestProgressEndsBeforeResult(t *testing.T) {
	for range 20 {
		var out strings.Builder
		var mu sync.Mutex
		w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
		r, stop := progress(w, strings.NewReader("x"), 1)
		r.Read(make([]byte, 1))
		stop()
		mu.Lock()
		got := out.String()
		mu.Unlock()
		if !strings.HasSuffix(got, "\r\x1b[K") {
			t.Fatalf("after stop the progress line is not cleared: %q", got)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
