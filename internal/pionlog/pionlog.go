// Package pionlog routes pion's loggers into a log/slog logger, each
// message at the matching level with its pion scope ("ice", "dtls", …).
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

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

type leveled struct{ l *slog.Logger }

func (l leveled) log(level slog.Level, msg string) {
	l.l.Log(context.Background(), level, msg)
}

func (l leveled) logf(level slog.Level, format string, args ...any) {
	if l.l.Enabled(context.Background(), level) {
		l.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l leveled) Trace(msg string)                  { l.log(LevelTrace, msg) }
func (l leveled) Tracef(format string, args ...any) { l.logf(LevelTrace, format, args...) }
func (l leveled) Debug(msg string)                  { l.log(slog.LevelDebug, msg) }
func (l leveled) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l leveled) Info(msg string)                   { l.log(slog.LevelInfo, msg) }
func (l leveled) Infof(format string, args ...any)  { l.logf(slog.LevelInfo, format, args...) }
func (l leveled) Warn(msg string)                   { l.log(slog.LevelWarn, msg) }
func (l leveled) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args...) }
func (l leveled) Error(msg string)                  { l.log(slog.LevelError, msg) }
func (l leveled) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
