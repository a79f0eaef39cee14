package rtc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/pionlog"
)

type memSink struct {
	mu    sync.Mutex
	texts []string
	files map[string][]byte
	max   int64
}

func (m *memSink) Text(from ident.Fingerprint, text string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.texts = append(m.texts, text)
	return nil
}

type memFile struct {
	m    *memSink
	name string
	buf  bytes.Buffer
}

func (f *memFile) Write(b []byte) (int, error) { return f.buf.Write(b) }
func (f *memFile) Abort()                      {}
func (f *memFile) Suspend()                    {}
func (f *memFile) Have() (int64, hash.Hash)    { return 0, sha256.New() }
func (f *memFile) Commit(string) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	f.m.files[f.name] = f.buf.Bytes()
	return nil
}

func (m *memSink) text(i int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i >= len(m.texts) {
		return ""
	}
	return m.texts[i]
}

func (m *memSink) file(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files[name]
}

func (m *memSink) File(from ident.Fingerprint, o Offer) (FileWriter, error) {
	name, size := o.Name, o.Size
	if size > m.max {
		return nil, fmt.Errorf("file too large: %d bytes, at most %d", size, m.max)
	}
	return &memFile{m: m, name: name}, nil
}

// connect makes a session from a to b in process (the signalling is a
// function call here; the daemon carries it over TLS).
func connect(t testing.TB, ea, eb *Endpoint, a, b *testIdentity, sink Sink) (*Session, *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, offer, err := ea.Offer(ctx, b.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	from, err := Authorize(offer, a.Fingerprint, func(f ident.Fingerprint) bool { return f == a.Fingerprint })
	if err != nil {
		t.Fatal(err)
	}
	sb, answer, err := eb.Answer(ctx, offer, from, func(dc *webrtc.DataChannel) {
		Serve(dc, from, sink, slog.New(slog.DiscardHandler))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.Finish(answer); err != nil {
		t.Fatal(err)
	}
	// No wait for b's side: a sends as soon as its own channel opens, as
	// the daemon does, so b's handler must already be in place.
	return sa, sb
}

func endpoints(t testing.TB) (*Endpoint, *Endpoint, *testIdentity, *testIdentity) {
	a, b := identity(t), identity(t)
	return NewEndpoint(Config{Certificate: Certificate(a.Key, a.Cert), Loopback: true}),
		NewEndpoint(Config{Certificate: Certificate(b.Key, b.Cert), Loopback: true}), a, b
}

func TestSendTextAndFile(t *testing.T) {
	ea, eb, a, b := endpoints(t)
	sink := &memSink{files: map[string][]byte{}, max: 8 << 20}
	sa, sb := connect(t, ea, eb, a, b, sink)
	defer sa.Close()
	defer sb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dc, err := sa.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := SendText(ctx, dc, "hello"); err != nil || sink.text(0) != "hello" {
		t.Fatalf("text: %v %q", err, sink.text(0))
	}
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	sent, err := SendFile(ctx, dc, Offer{Name: "data.bin", Size: int64(len(data))}, bytes.NewReader(data), nil)
	want := sha256.Sum256(data)
	if err != nil || sent.SHA256 != hex.EncodeToString(want[:]) || !bytes.Equal(sink.file("data.bin"), data) {
		t.Fatalf("file: %v, %d bytes arrived", err, len(sink.file("data.bin")))
	}
	// Too large: refused before any byte is sent.
	big := make([]byte, 9<<20)
	if _, err := SendFile(ctx, dc, Offer{Name: "big.bin", Size: int64(len(big))}, bytes.NewReader(big), nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("too large: %v", err)
	}
	ev, pair := sa.Events()
	if len(ev) < 4 || pair == "" {
		t.Fatalf("events %+v, pair %q", ev, pair)
	}
}

// TestFastTransferDropsNothing: a receiver that cannot keep up with a
// burst must be protected by its SCTP window, not by pion dropping
// packets in front of DTLS (with pion's 1 MiB window it dropped hundreds
// per 64 MB here, and every drop halved the sender's rate).
func TestFastTransferDropsNothing(t *testing.T) {
	ctx, dc := fileChannel(t)
	before := pionlog.Dropped()
	data := bytes.Repeat([]byte("pairing!"), 48<<20/8)
	if _, err := SendFile(ctx, dc, Offer{Name: "fast.bin", Size: int64(len(data))}, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if n := pionlog.Dropped() - before; n != 0 {
		t.Fatalf("pion dropped %d packets for a full buffer during a 48 MB transfer", n)
	}
}

// TestNoLeakAfterCycles: 50 connections, each sending a text at once
// (the receiver's handler must be in place before its first message), and
// no goroutine left after they closed.
func TestNoLeakAfterCycles(t *testing.T) {
	ea, eb, a, b := endpoints(t)
	for i := range 50 {
		sink := &memSink{files: map[string][]byte{}}
		sa, sb := connect(t, ea, eb, a, b, sink)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dc, err := sa.Channel(ctx)
		if err == nil {
			err = SendText(ctx, dc, "hi")
		}
		cancel()
		if err != nil || sink.text(0) != "hi" {
			t.Fatalf("cycle %d: %v", i, err)
		}
		sa.Close()
		sb.Close()
	}
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
}

// TestPingAndIdle: a ping is answered; WaitIdle does not fire while
// messages flow, and fires once they stop.
func TestPingAndIdle(t *testing.T) {
	ea, eb, a, b := endpoints(t)
	sa, sb := connect(t, ea, eb, a, b, &memSink{files: map[string][]byte{}})
	defer sa.Close()
	defer sb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dc, err := sa.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := Ping(ctx, dc); err != nil {
		t.Fatal(err)
	}
	const idle = time.Second
	busy := time.Now()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(idle / 5):
				Ping(ctx, dc)
			}
		}
	}()
	time.AfterFunc(3*idle, func() { close(stop) })
	if !sb.WaitIdle(ctx, idle) {
		t.Fatal("WaitIdle returned without the connection going idle")
	}
	if took := time.Since(busy); took < 3*idle {
		t.Fatalf("idle after %s, while pings still flowed for %s", took, 3*idle)
	}
	sa.Close()
	if sb.WaitIdle(ctx, time.Hour) {
		t.Fatal("WaitIdle says idle for a closed connection")
	}
}

func (f *memFile) OnStop(func()) {}
