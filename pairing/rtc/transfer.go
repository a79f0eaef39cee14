package rtc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
)

// The data channel protocol: JSON control messages (text) and file bytes
// (binary).
//
//	sender → {"t":"ping"}                              ← {"t":"pong"}
//	sender → {"t":"text","text":…}                     ← {"t":"ack","ok":…}
//	sender → {"t":"file","name":…,"size":…}            ← {"t":"ready"} or {"t":"ack","ok":false,…}
//	sender → binary chunks …, {"t":"end","sha256":…}   ← {"t":"ack","ok":…,"error":…}
const (
	chunkSize = 64 << 10
	// highWater and lowWater bound what waits in the SCTP send buffer:
	// enough to keep the link busy, little memory.
	highWater = 8 << 20
	lowWater  = 2 << 20
	// maxControl bounds a control message.
	maxControl = 64 << 10
	// replyTimeout bounds the wait for each answer of the receiver (after
	// the last byte, it has to write and check the whole file).
	replyTimeout = 30 * time.Second
)

type message struct {
	T      string `json:"t"`
	Text   string `json:"text,omitempty"`
	Name   string `json:"name,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	OK     bool   `json:"ok,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Sink receives what paired devices send.
type Sink interface {
	Text(from ident.Fingerprint, text string) error
	File(from ident.Fingerprint, name string, size int64) (FileWriter, error)
}

// FileWriter takes a file's bytes; Commit keeps it when the sum matches,
// Abort drops it.
type FileWriter interface {
	io.Writer
	Commit(sha256hex string) error
	Abort()
}

// ErrRefused is the receiver's no.
var ErrRefused = errors.New("the receiver refused")

// sender waits for the receiver's replies on dc.
type sender struct {
	dc      *webrtc.DataChannel
	replies chan message
	low     chan struct{}
	// gone is closed when the channel closed (nil: never, the session's
	// context ends the send).
	gone chan struct{}
}

// ErrGone: the channel closed during a send.
var ErrGone = errors.New("the connection closed")

func newSender(dc *webrtc.DataChannel) *sender {
	s := &sender{dc: dc, replies: make(chan message, 4), low: make(chan struct{}, 1)}
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var msg message
		if m.IsString && len(m.Data) <= maxControl && json.Unmarshal(m.Data, &msg) == nil {
			select {
			case s.replies <- msg:
			default:
			}
		}
	})
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.low <- struct{}{}:
		default:
		}
	})
	return s
}

func (s *sender) send(m message) error {
	b, _ := json.Marshal(m)
	return s.dc.SendText(string(b))
}

func (s *sender) reply(ctx context.Context) (message, error) {
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case m := <-s.replies:
		return m, nil
	case <-t.C:
		return message{}, fmt.Errorf("the receiver did not answer within %s", replyTimeout)
	case <-ctx.Done():
		return message{}, fmt.Errorf("no answer from the receiver: %w", context.Cause(ctx))
	case <-s.gone:
		return message{}, ErrGone
	}
}

func ackErr(m message) error {
	if m.T == "ack" && m.OK {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRefused, m.Error)
}

// Ping checks that the receiver still answers on dc (a kept connection
// whose peer went away looks open until ICE times out, seconds later).
func Ping(ctx context.Context, dc *webrtc.DataChannel) error {
	s := newSender(dc)
	if err := s.send(message{T: "ping"}); err != nil {
		return err
	}
	m, err := s.reply(ctx)
	if err != nil {
		return err
	}
	if m.T != "pong" {
		return fmt.Errorf("unexpected answer %q to a ping", m.T)
	}
	return nil
}

// SendText delivers a text message and waits for the receiver's ack.
func SendText(ctx context.Context, dc *webrtc.DataChannel, text string) error {
	return newSender(dc).text(ctx, text)
}

func (s *sender) text(ctx context.Context, text string) error {
	if err := s.send(message{T: "text", Text: text}); err != nil {
		return err
	}
	m, err := s.reply(ctx)
	if err != nil {
		return err
	}
	return ackErr(m)
}

// SendFile streams size bytes of r as name, with back-pressure, and waits
// for the receiver to confirm the SHA-256. progress gets the bytes sent.
func SendFile(ctx context.Context, dc *webrtc.DataChannel, name string, size int64, r io.Reader, progress func(int64)) (string, error) {
	return newSender(dc).file(ctx, name, size, r, progress)
}

func (s *sender) file(ctx context.Context, name string, size int64, r io.Reader, progress func(int64)) (string, error) {
	dc := s.dc
	if err := s.send(message{T: "file", Name: name, Size: size}); err != nil {
		return "", err
	}
	m, err := s.reply(ctx)
	if err != nil {
		return "", err
	}
	if m.T != "ready" {
		return "", ackErr(m)
	}
	h := sha256.New()
	buf := make([]byte, chunkSize)
	var sent int64
	for sent < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-sent)])
		if err != nil {
			return "", fmt.Errorf("read after %d of %d bytes: %w", sent, size, err)
		}
		for dc.BufferedAmount() > highWater {
			select {
			case <-s.low:
			case m := <-s.replies: // an early refusal
				return "", ackErr(m)
			case <-ctx.Done():
				return "", fmt.Errorf("after %d of %d bytes: %w", sent, size, context.Cause(ctx))
			case <-s.gone:
				return "", fmt.Errorf("after %d of %d bytes: %w", sent, size, ErrGone)
			}
		}
		if err := dc.Send(buf[:n]); err != nil {
			return "", err
		}
		h.Write(buf[:n])
		sent += int64(n)
		if progress != nil {
			progress(sent)
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := s.send(message{T: "end", SHA256: sum}); err != nil {
		return "", err
	}
	if m, err = s.reply(ctx); err != nil {
		return "", err
	}
	return sum, ackErr(m)
}

// Serve handles what a paired device sends on dc, into sink. Call it
// before the channel opens (Answer's onChannel). It returns at once; the
// work happens in the channel's callbacks.
func Serve(dc *webrtc.DataChannel, from ident.Fingerprint, sink Sink, log *slog.Logger) {
	var mu sync.Mutex
	r := &receiver{from: from, sink: sink, log: log}
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		mu.Lock()
		defer mu.Unlock()
		for _, reply := range r.handle(m.IsString, m.Data) {
			b, _ := json.Marshal(reply)
			dc.SendText(string(b))
		}
	})
	// A connection that ends mid-file leaves no partial file behind.
	dc.OnClose(func() {
		mu.Lock()
		defer mu.Unlock()
		r.interrupted()
	})
}

// Duplex is one data channel used both ways, as a browser page's is:
// what the peer sends (texts, files, pings) goes to a receiver into a
// sink, and the peer's replies to what we send (ack, ready, pong) go to
// the send in flight. The same protocol as between daemons. Sends take
// turns.
type Duplex struct {
	s    *sender
	mu   sync.Mutex // the receiver's state
	r    *receiver
	turn sync.Mutex // one send at a time
	once sync.Once
}

// NewDuplex sets up dc's back-pressure signal. The caller's OnMessage
// passes each of the peer's messages to Handle, and its OnClose calls
// Closed.
func NewDuplex(dc *webrtc.DataChannel, from ident.Fingerprint, sink Sink, log *slog.Logger) *Duplex {
	s := &sender{dc: dc, replies: make(chan message, 4), low: make(chan struct{}, 1), gone: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.low <- struct{}{}:
		default:
		}
	})
	return &Duplex{s: s, r: &receiver{from: from, sink: sink, log: log}}
}

// Handle takes one message from the peer.
func (d *Duplex) Handle(isString bool, data []byte) {
	if isString && len(data) <= maxControl {
		var msg message
		if json.Unmarshal(data, &msg) == nil && (msg.T == "ack" || msg.T == "ready" || msg.T == "pong") {
			select {
			case d.s.replies <- msg:
			default: // nobody waits: a late reply
			}
			return
		}
	}
	d.mu.Lock()
	replies := d.r.handle(isString, data)
	d.mu.Unlock()
	for _, m := range replies {
		d.s.send(m)
	}
}

// Closed ends the sends in flight and drops a file half received.
func (d *Duplex) Closed() {
	d.once.Do(func() { close(d.s.gone) })
	d.mu.Lock()
	defer d.mu.Unlock()
	d.r.interrupted()
}

// SendText delivers a text and waits for the peer's ack.
func (d *Duplex) SendText(ctx context.Context, text string) error {
	d.turn.Lock()
	defer d.turn.Unlock()
	d.drain()
	return d.s.text(ctx, text)
}

// Ping checks that the peer still answers on the shared channel (a page
// whose browser went away looks open until ICE times out, seconds later).
func (d *Duplex) Ping(ctx context.Context) error {
	d.turn.Lock()
	defer d.turn.Unlock()
	d.drain()
	if err := d.s.send(message{T: "ping"}); err != nil {
		return err
	}
	m, err := d.s.reply(ctx)
	if err == nil && m.T != "pong" {
		err = fmt.Errorf("unexpected answer %q to a ping", m.T)
	}
	return err
}

// SendFile streams a file as SendFile does, on the shared channel.
func (d *Duplex) SendFile(ctx context.Context, name string, size int64, r io.Reader, progress func(int64)) (string, error) {
	d.turn.Lock()
	defer d.turn.Unlock()
	d.drain()
	return d.s.file(ctx, name, size, r, progress)
}

// drain drops replies that came after their send gave up.
func (d *Duplex) drain() {
	for {
		select {
		case <-d.s.replies:
		default:
			return
		}
	}
}

// interrupted drops the file being received, if any.
func (r *receiver) interrupted() {
	if r.w != nil && r.bad == nil {
		r.w.Abort()
		r.log.Warn("inbox: transfer interrupted; partial file removed", "from", r.from.ID(), "got", r.got, "of", r.want)
	}
	r.w = nil
}

// receiver is the receiving side of the protocol: one file at a time.
type receiver struct {
	from ident.Fingerprint
	sink Sink
	log  *slog.Logger
	w    FileWriter
	h    hash.Hash
	got  int64
	want int64
	bad  error // the file is refused; its bytes are dropped
}

func ack(err error) message {
	if err != nil {
		return message{T: "ack", Error: err.Error()}
	}
	return message{T: "ack", OK: true}
}

// handle takes one message of the peer and returns the replies.
func (r *receiver) handle(isString bool, data []byte) []message {
	if !isString {
		if r.w == nil || r.bad != nil {
			return nil
		}
		r.got += int64(len(data))
		if r.got > r.want {
			r.bad = fmt.Errorf("more bytes than announced (%d)", r.want)
			r.w.Abort()
			return []message{ack(r.bad)}
		}
		if _, err := r.w.Write(data); err != nil {
			r.bad = err
			r.w.Abort()
			return []message{ack(err)}
		}
		r.h.Write(data)
		return nil
	}
	var msg message
	if len(data) > maxControl || json.Unmarshal(data, &msg) != nil {
		return []message{ack(errors.New("malformed message"))}
	}
	switch msg.T {
	case "ping":
		return []message{{T: "pong"}}
	case "text":
		return []message{ack(r.sink.Text(r.from, msg.Text))}
	case "file":
		if r.w != nil && r.bad == nil {
			r.w.Abort()
		}
		r.w, r.h, r.got, r.want, r.bad = nil, sha256.New(), 0, msg.Size, nil
		fw, err := r.sink.File(r.from, msg.Name, msg.Size)
		if err != nil {
			r.bad = err
			r.log.Warn("inbox: file refused", "from", r.from.ID(), "name", msg.Name, "size", msg.Size, "err", err)
			return []message{ack(err)}
		}
		r.w = fw
		return []message{{T: "ready"}}
	case "end":
		if r.bad != nil || r.w == nil {
			return nil // already answered
		}
		var err error
		switch sum := hex.EncodeToString(r.h.Sum(nil)); {
		case r.got != r.want:
			err = fmt.Errorf("got %d bytes, announced %d", r.got, r.want)
		case sum != msg.SHA256:
			err = fmt.Errorf("SHA-256 mismatch: got %s, sender says %s", sum, msg.SHA256)
		}
		if err == nil {
			err = r.w.Commit(msg.SHA256)
		} else {
			r.w.Abort()
		}
		r.w = nil
		return []message{ack(err)}
	default:
		return []message{ack(fmt.Errorf("unknown message %q", msg.T))}
	}
}
