package rtc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
