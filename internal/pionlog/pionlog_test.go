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
	want := []string{"DEBUG candidate host", "INFO checking", "WARN slow 900ms", "ERROR failed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q (trace hidden at debug)", got, want)
	}
}
