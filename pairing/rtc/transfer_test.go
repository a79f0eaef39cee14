package rtc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"log/slog"
	"testing"

	"github.com/lanpairing/pairing/internal/ident"
)

// checkSink fails the test when the receiver writes past the announced
// size, writes after an abort, or commits what the sum does not match.
type checkSink struct {
	t         *testing.T
	committed int
}

type checkFile struct {
	t       *testing.T
	s       *checkSink
	size    int64
	buf     bytes.Buffer
	aborted bool
}

func (s *checkSink) Text(ident.Fingerprint, string) error { return nil }

func (s *checkSink) File(_ ident.Fingerprint, o Offer) (FileWriter, error) {
	size := o.Size
	if size < 0 || size > 1<<20 {
		return nil, errors.New("file too large")
	}
	return &checkFile{t: s.t, s: s, size: size}, nil
}

func (f *checkFile) Write(b []byte) (int, error) {
	if f.aborted {
		f.t.Fatal("write after abort")
	}
	if int64(f.buf.Len()+len(b)) > f.size {
		f.t.Fatalf("%d bytes written of an announced %d", f.buf.Len()+len(b), f.size)
	}
	return f.buf.Write(b)
}

func (f *checkFile) Abort() { f.aborted = true }

func (f *checkFile) Suspend() { f.aborted = true }

func (f *checkFile) Have() (int64, hash.Hash) { return 0, sha256.New() }

func (f *checkFile) Commit(sum string) error {
	got := sha256.Sum256(f.buf.Bytes())
	if f.aborted || int64(f.buf.Len()) != f.size || hex.EncodeToString(got[:]) != sum {
		f.t.Fatalf("committed %d of %d bytes (aborted %v), sum %s claimed %s", f.buf.Len(), f.size, f.aborted, hex.EncodeToString(got[:]), sum)
	}
	f.s.committed++
	return nil
}

// ops encodes messages for the fuzzer: a kind byte (even: text, odd:
// binary), a length byte, the bytes.
func ops(msgs ...any) []byte {
	var out []byte
	for _, m := range msgs {
		switch m := m.(type) {
		case string:
			out = append(out, 0, byte(len(m)))
			out = append(out, m...)
		case []byte:
			out = append(out, 1, byte(len(m)))
			out = append(out, m...)
		}
	}
	return out
}

func runOps(t *testing.T, in []byte) *checkSink {
	sink := &checkSink{t: t}
	r := &receiver{sink: sink, log: slog.New(slog.DiscardHandler)}
	for len(in) >= 2 {
		isString, n := in[0]%2 == 0, min(int(in[1]), len(in)-2)
		data := in[2 : 2+n]
		in = in[2+n:]
		for _, reply := range r.handle(isString, data) {
			if reply.T != "ack" && reply.T != "ready" && reply.T != "pong" {
				t.Fatalf("reply %+v", reply)
			}
			if _, err := json.Marshal(reply); err != nil {
				t.Fatal(err)
			}
		}
	}
	return sink
}

func TestReceiverCommitsOnlyWhatMatches(t *testing.T) {
	data := []byte("hello, file")
	sum := sha256.Sum256(data)
	good := `{"t":"end","sha256":"` + hex.EncodeToString(sum[:]) + `"}`
	if s := runOps(t, ops(`{"t":"file","name":"a","size":11}`, data[:5], data[5:], good)); s.committed != 1 {
		t.Fatalf("a good file: %d committed", s.committed)
	}
	for name, in := range map[string][]byte{
		"wrong sum":  ops(`{"t":"file","name":"a","size":11}`, data, `{"t":"end","sha256":"00"}`),
		"short":      ops(`{"t":"file","name":"a","size":12}`, data, good),
		"long":       ops(`{"t":"file","name":"a","size":5}`, data, good),
		"refused":    ops(`{"t":"file","name":"a","size":-1}`, data, good),
		"no file":    ops(data, good),
		"reannounce": ops(`{"t":"file","name":"a","size":11}`, data[:5], `{"t":"file","name":"b","size":6}`, data[:5], good),
	} {
		if s := runOps(t, in); s.committed != 0 {
			t.Errorf("%s: %d committed", name, s.committed)
		}
	}
}

func FuzzReceiver(f *testing.F) {
	data := []byte("hello, file")
	sum := sha256.Sum256(data)
	good := `{"t":"end","sha256":"` + hex.EncodeToString(sum[:]) + `"}`
	f.Add(ops(`{"t":"file","name":"a","size":11}`, data[:5], data[5:], good))
	f.Add(ops(`{"t":"ping"}`, `{"t":"text","text":"hi"}`, `{"t":"x"}`, `{`, data))
	f.Add(ops(`{"t":"file","name":"a","size":5}`, data, good, `{"t":"file","name":"b","size":0}`, `{"t":"end","sha256":""}`))
	f.Fuzz(func(t *testing.T, in []byte) { runOps(t, in) })
}

func (f *checkFile) OnStop(func()) {}
