package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	slogjournal "github.com/systemd/slog-journal"
	"golang.org/x/sys/unix"
)

// underJournal reports whether stderr is the journal's stream, as systemd
// says in JOURNAL_STREAM ("device:inode" of the stream it connected).
func underJournal() bool {
	want := os.Getenv("JOURNAL_STREAM")
	if want == "" {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(os.Stderr.Fd()), &st); err != nil {
		return false
	}
	return want == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalKeys names the journal fields of the attributes people filter on
// (journalctl PEER_ID=…); the others are upper-cased.
var journalKeys = map[string]string{"peer": "PEER_ID", "id": "DEVICE_ID", "addr": "ADDRESS", "address": "ADDRESS", "from": "REMOTE", "err": "ERROR"}

// journalKey is key as a journal field name: ^[A-Z_][A-Z0-9_]*$.
func journalKey(groups []string, key string) string {
	if k, ok := journalKeys[key]; ok && len(groups) == 0 {
		return k
	}
	s := strings.ToUpper(strings.Join(append(groups, key), "_"))
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' || b[0] == '_' {
		b = append([]byte("F"), b...)
	}
	return string(b)
}

// journalHandler logs through the journal's native protocol: PRIORITY
// from the level, each attribute a field of its own, and the message
// with the attributes as key=value, so that plain 'journalctl -u
// pairing' reads as the text log does.
type journalHandler struct {
	inner *slogjournal.Handler
	text  []string // key=value of WithAttrs
}

func newJournalHandler(level slog.Leveler) (slog.Handler, error) {
	h, err := slogjournal.NewHandler(&slogjournal.Options{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			a.Key = journalKey(groups, a.Key)
			return a
		},
		ReplaceGroup: func(g string) string { return journalKey(nil, g) },
	})
	if err != nil {
		return nil, err
	}
	return &journalHandler{inner: h}, nil
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	msg := journalMessage(r, h.text)
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	return h.inner.Handle(ctx, out)
}

// journalMessage is the record's message followed by its attributes as
// key=value, the way the text handler writes them.
func journalMessage(r slog.Record, pre []string) string {
	parts := append([]string{r.Message}, pre...)
	r.Attrs(func(a slog.Attr) bool {
		parts = append(parts, attrText(a))
		return true
	})
	return strings.Join(parts, " ")
}

func attrText(a slog.Attr) string {
	v := a.Value.Resolve().String()
	if strings.ContainsAny(v, " \t\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	return a.Key + "=" + v
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	text := append([]string(nil), h.text...)
	for _, a := range as {
		text = append(text, attrText(a))
	}
	return &journalHandler{inner: h.inner.WithAttrs(as).(*slogjournal.Handler), text: text}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name).(*slogjournal.Handler), text: h.text}
}
