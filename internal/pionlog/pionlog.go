// Package pionlog routes pion's loggers into a log/slog logger with their
// pion scope ("ice", "dtls", …): pion's info and its routine warnings at
// debug, repeated lines limited with a count, dropped packets counted.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
)

// routine are what pion warns about on healthy connections: a closed
// connection's last packets, checks before any pair exists, a full
// buffer on a fast transfer (counted: see Dropped). They go to debug.
var routine = []string{
	"Failed to ping without candidate pairs",
	"conn is closed",
	"use of closed network connection",
	"buffer is full",
	"Failed to write packet",
	"io: read/write on closed pipe",
}

// dropped counts the packets pion said it dropped for a full buffer.
var dropped atomic.Uint64

// Dropped is how many packets pion dropped in user space because a buffer
// was full (its mux or packetio buffers, ahead of SCTP).
func Dropped() uint64 { return dropped.Load() }

const (
	// repeatWindow and repeatBurst: a line (by its format) logs at most
	// repeatBurst times per window; the rest are counted and said once.
	repeatWindow = 10 * time.Second
	repeatBurst  = 5
	// maxKeys bounds the lines remembered; past it they start afresh.
	maxKeys = 256
)

type window struct {
	start      time.Time
	n, dropped int
}

var repeats = struct {
	sync.Mutex
	by map[string]*window
}{by: map[string]*window{}}

// admit reports whether a line with key may be logged now, and how many
// like it were held back in the window that just ended.
func admit(key string, now time.Time) (bool, int) {
	repeats.Lock()
	defer repeats.Unlock()
	w := repeats.by[key]
	if w == nil {
		if len(repeats.by) >= maxKeys {
			repeats.by = map[string]*window{}
		}
		w = &window{start: now}
		repeats.by[key] = w
	}
	held := 0
	if now.Sub(w.start) >= repeatWindow {
		held = w.dropped
		w.start, w.n, w.dropped = now, 0, 0
	}
	if w.n >= repeatBurst {
		w.dropped++
		return false, 0
	}
	w.n++
	return true, held
}

// LevelTrace is below slog's Debug: pion's trace output is enabled only
// when the handler asks for that much.
const LevelTrace = slog.LevelDebug - 4

// Factory is a pion logging.LoggerFactory writing to Logger.
type Factory struct {
	Logger *slog.Logger
}

var _ logging.LoggerFactory = Factory{}

// NewLogger returns the logger of one pion scope.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return leveled{f.Logger.With("pion", scope)}
}

// mayDrop: the line may tell of a dropped packet (then it is formatted
// even when its level is off, to be counted).
func mayDrop(s string) bool {
	return strings.Contains(s, "buffer is full") || strings.Contains(s, "Buffer is full") || strings.Contains(s, "Failed to write packet")
}

type leveled struct{ l *slog.Logger }

func (l leveled) log(level slog.Level, msg string) { l.emit(level, msg, msg) }

func (l leveled) logf(level slog.Level, format string, args ...any) {
	if l.l.Enabled(context.Background(), level) || mayDrop(format) {
		l.emit(level, format, fmt.Sprintf(format, args...))
	}
}

// emit logs msg (key: its format) at level, lowered to debug when it is
// routine, unless the line repeats too often.
func (l leveled) emit(level slog.Level, key, msg string) {
	if mayDrop(msg) && strings.Contains(strings.ToLower(msg), "buffer is full") {
		dropped.Add(1)
	}
	if level > slog.LevelDebug && level < slog.LevelError {
		for _, r := range routine {
			if strings.Contains(msg, r) {
				level = slog.LevelDebug
				break
			}
		}
	}
	ctx := context.Background()
	if !l.l.Enabled(ctx, level) {
		return
	}
	ok, held := admit(key, time.Now())
	if !ok {
		return
	}
	if held > 0 {
		l.l.Log(ctx, level, msg, "repeated", held, "in", repeatWindow)
		return
	}
	l.l.Log(ctx, level, msg)
}

func (l leveled) Trace(msg string)                  { l.log(LevelTrace, msg) }
func (l leveled) Tracef(format string, args ...any) { l.logf(LevelTrace, format, args...) }
func (l leveled) Debug(msg string)                  { l.log(slog.LevelDebug, msg) }
func (l leveled) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l leveled) Info(msg string)                   { l.log(slog.LevelDebug, msg) } // routine for us
func (l leveled) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l leveled) Warn(msg string)                   { l.log(slog.LevelWarn, msg) }
func (l leveled) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args...) }
func (l leveled) Error(msg string)                  { l.log(slog.LevelError, msg) }
func (l leveled) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
