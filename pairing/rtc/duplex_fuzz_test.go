package rtc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
)

// fuzzSink holds the receiver to its promises from pion's goroutines
// (t.Errorf, not Fatal): no byte past the announced size, nothing written
// after an abort, a commit only of what the sum matches, and no file left
// open once the channel closed.
type fuzzSink struct {
	t    testing.TB
	mu   sync.Mutex
	open int
	kept int
}

type fuzzFile struct {
	s     *fuzzSink
	size  int64
	buf   bytes.Buffer
	ended bool
}

func (s *fuzzSink) Text(ident.Fingerprint, string) error { return nil }

func (s *fuzzSink) File(_ ident.Fingerprint, o Offer) (FileWriter, error) {
	size := o.Size
	if size < 0 || size > 1<<20 {
		return nil, errors.New("file too large")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open++
	return &fuzzFile{s: s, size: size}, nil
}

func (f *fuzzFile) Write(b []byte) (int, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if f.ended {
		f.s.t.Errorf("write after the file ended")
	}
	if int64(f.buf.Len()+len(b)) > f.size {
		f.s.t.Errorf("%d bytes written of an announced %d", f.buf.Len()+len(b), f.size)
	}
	return f.buf.Write(b)
}

func (f *fuzzFile) end() {
	if f.ended {
		f.s.t.Errorf("a file ended twice")
	}
	f.ended = true
	f.s.open--
}

func (f *fuzzFile) Have() (int64, hash.Hash) { return 0, sha256.New() }

func (f *fuzzFile) Suspend() { f.Abort() }

func (f *fuzzFile) Abort() {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.end()
}

func (f *fuzzFile) Commit(sum string) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	got := sha256.Sum256(f.buf.Bytes())
	if int64(f.buf.Len()) != f.size || hex.EncodeToString(got[:]) != sum {
		f.s.t.Errorf("committed %d of %d bytes, sum %x, claimed %s", f.buf.Len(), f.size, got, sum)
	}
	f.end()
	f.s.kept++
	return nil
}

func (s *fuzzSink) openFiles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// duplexOps encodes a sequence for FuzzDuplex: per message a header byte
// (bit 0: binary; bits 1–2: which of the peer's channels), a length
// byte, the bytes. A header of 0xff instead makes us send a text to the
// peer, whose answer is whatever the sequence sends next.
func duplexOps(msgs ...any) []byte {
	var out []byte
	for _, m := range msgs {
		switch m := m.(type) {
		case string:
			out = append(out, 0, byte(len(m)))
			out = append(out, m...)
		case []byte:
			out = append(out, 1, byte(len(m)))
			out = append(out, m...)
		case int: // a message on another channel: the next one
			out = append(out, byte(m<<1), 2, '{', '}')
		case nil:
			out = append(out, 0xff)
		}
	}
	return out
}

// FuzzDuplex drives a real session: two pion endpoints over loopback, the
// answering one running a Duplex (a page's channel) into fuzzSink. The
// peer opens several channels and sends the sequence: messages out of
// order, wrong sizes and sums, huge sizes, binary for text. The session
// must not panic, keep every file promise, still answer a ping on its
// channel afterwards, and leave no file open once the channel closed.
func FuzzDuplex(f *testing.F) {
	data := []byte("hello, file")
	sum := sha256.Sum256(data)
	good := `{"t":"end","sha256":"` + hex.EncodeToString(sum[:]) + `"}`
	f.Add(duplexOps(`{"t":"file","name":"a","size":11}`, data[:5], data[5:], good))
	f.Add(duplexOps(good, data, `{"t":"file","name":"a","size":11}`, `{"t":"end","sha256":"00"}`, data))
	f.Add(duplexOps(`{"t":"file","name":"a","size":9223372036854775807}`, data, `{"t":"file","name":"b","size":-5}`, good))
	f.Add(duplexOps(`{"t":"file","name":"a","size":5}`, data, good, []byte(`{"t":"ping"}`), `{"t":"text","text":"hi"}`))
	f.Add(duplexOps(1, 2, 3, `{"t":"file","name":"a","size":11}`, data[:5], 1, data[5:], good))
	f.Add(duplexOps(nil, `{"t":"ack","ok":true}`, `{"t":"ready"}`, `{"t":"pong"}`, `{`, `{"t":7}`, `null`))
	f.Add(duplexOps(`{"t":"file","name":"a","size":11}`, data[:5]))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4096 {
			return
		}
		runDuplex(t, in)
	})
}

func runDuplex(t *testing.T, in []byte) {
	ea, eb, a, b := endpoints(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, offer, err := ea.Offer(ctx, b.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sink := &fuzzSink{t: t}
	var d *Duplex
	var closed sync.WaitGroup
	closed.Add(1)
	sb, answer, err := eb.Answer(ctx, offer, a.Fingerprint, func(dc *webrtc.DataChannel) {
		d = NewDuplex(dc, a.Fingerprint, sink, slog.New(slog.DiscardHandler))
		dc.OnMessage(func(m webrtc.DataChannelMessage) { d.Handle(m.IsString, m.Data) })
		dc.OnClose(func() { d.Closed(); closed.Done() })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if err := sa.Finish(answer); err != nil {
		t.Fatal(err)
	}
	first, err := sa.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Channel(ctx); err != nil {
		t.Fatal(err)
	}
	answers := make(chan message, 1024)
	first.OnMessage(func(m webrtc.DataChannelMessage) {
		var msg message
		if m.IsString && json.Unmarshal(m.Data, &msg) == nil {
			select {
			case answers <- msg:
			default:
			}
		}
	})
	chans := []*webrtc.DataChannel{first}
	for range 3 {
		dc, err := sa.pc.CreateDataChannel("more", nil)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, dc)
	}
	var ours sync.WaitGroup
	for len(in) > 0 {
		if in[0] == 0xff {
			in = in[1:]
			ours.Add(1)
			go func() {
				defer ours.Done()
				c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				d.SendText(c, "to the page")
			}()
			continue
		}
		if len(in) < 2 {
			break
		}
		binary, ch, n := in[0]&1 == 1, int(in[0]>>1)&3, min(int(in[1]), len(in)-2)
		msg := in[2 : 2+n]
		in = in[2+n:]
		dc := chans[ch]
		if dc.ReadyState() != webrtc.DataChannelStateOpen && ch != 0 {
			continue // the session closed it, as it should
		}
		if binary {
			err = dc.Send(msg)
		} else {
			err = dc.SendText(string(msg))
		}
		if err != nil && ch == 0 {
			t.Fatalf("send on the session's channel: %v", err)
		}
	}
	ours.Wait()
	// The channel still works: a ping is answered (answers to the
	// sequence may come first).
	if err := first.SendText(`{"t":"ping"}`); err != nil {
		t.Fatal(err)
	}
	for pong := false; !pong; {
		select {
		case m := <-answers:
			pong = m.T == "pong"
		case <-ctx.Done():
			t.Fatal("no pong after the sequence")
		}
	}
	sa.Close()
	waited := make(chan struct{})
	go func() { closed.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the channel's close was not seen")
	}
	if n := sink.openFiles(); n != 0 {
		t.Fatalf("%d files left open after the channel closed", n)
	}
}

func (f *fuzzFile) OnStop(func()) {}
