package pionlog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLevelsAndScope(t *testing.T) {
	var buf bytes.Buffer
	f := Factory{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l := f.NewLogger("ice")
	l.Trace("hidden")
	l.Tracef("hidden %d", 1)
	l.Debugf("candidate %s", "host")
	l.Info("checking")
	l.Warnf("slow %dms", 900)
	l.Error("failed")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level, Msg, Pion string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Pion != "ice" {
			t.Fatalf("scope %q in %s", rec.Pion, line)
		}
		got = append(got, rec.Level+" "+rec.Msg)
	}
	want := []string{"DEBUG candidate host", "DEBUG checking", "WARN slow 900ms", "ERROR failed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q (trace hidden at debug)", got, want)
	}
}

// TestRoutineAndRepeats: a flood of pion's "buffer is full" lines, as a
// fast transfer brings, ends up as a few debug lines and a count.
func TestRoutineAndRepeats(t *testing.T) {
	var buf bytes.Buffer
	f := Factory{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l := f.NewLogger("mux")
	before := Dropped()
	for range 700 {
		l.Infof("mux: endpoint buffer is full, dropping packet")
		l.Warnf("Failed to write packet: %s", "packetio.Buffer is full")
	}
	l.Warn("Failed to ping without candidate pairs. Connection is not possible yet.")
	if buf.Len() != 0 {
		t.Fatalf("routine lines at info:\n%s", buf.String())
	}
	if got := Dropped() - before; got != 1400 {
		t.Fatalf("counted %d drops, want 1400", got)
	}
	var dbg bytes.Buffer
	f = Factory{Logger: slog.New(slog.NewTextHandler(&dbg, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l = f.NewLogger("ice")
	for i := range 300 {
		l.Debugf("checking pair %d", i)
	}
	if n := strings.Count(dbg.String(), "\n"); n > repeatBurst {
		t.Fatalf("%d lines of one repeated message, at most %d", n, repeatBurst)
	}
	l.Warnf("a real warning %d", 1)
	if !strings.Contains(dbg.String(), "level=WARN") {
		t.Fatal("a real warning was lowered")
	}
}
