package rtc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
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
//
// Optional fields, which an older peer ignores (and then behaves as
// above):
//
//   - "path" in a file offer: the file's relative path inside a folder
//     ("photos/2024/a.jpg", '/'-separated, every component a plain file
//     name, at most MaxPathDepth deep); "name" stays the base name, which
//     is all an older receiver uses.
//   - "head" in a file offer: hex SHA-256 of the file's first HeadSize
//     bytes (all of it when smaller). It asks for a resume: a receiver
//     that kept a partial of the same (sender, path, size, head) answers
//     {"t":"ready","offset":N,"prefix_sha256":…} with the N bytes it holds
//     and the SHA-256 of them, read back from its disk. The sender hashes
//     its own first N bytes: equal, it sends the bytes from N on; not
//     equal, it sends {"t":"discard"} (← {"t":"ack"}: the receiver removed
//     the partial) and the send fails with ErrResumeMismatch, to be sent
//     again from 0. Without "offset" (or 0) the bytes start at 0. The
//     "sha256" of "end" is always the whole file's: the receiver hashes
//     the prefix it kept, then the rest.
//
// A receiver keeps the partial of a resumable file (one with "head") when
// the transfer breaks off (the channel closed, the progress rule ended it)
// and removes it when the file is refused (more bytes than announced, a
// wrong SHA-256, a discard).
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
	Path   string `json:"path,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Head   string `json:"head,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	OK     bool   `json:"ok,omitempty"`
	Error  string `json:"error,omitempty"`
	resume
}

// resume holds a message's fields of a resume and of the bulk path.
type resume struct {
	Offset int64  `json:"offset,omitempty"`
	Prefix string `json:"prefix_sha256,omitempty"`
	// BulkOK: the page can move this file's bytes on the bulk path (in
	// an offer: it sends them; in a ready: it fetches them).
	BulkOK bool `json:"bulk_ok,omitempty"`
	// Bulk is the daemon's bulk transfer for the file (see bulk.go).
	Bulk *bulkGrant `json:"bulk,omitempty"`
}

// HeadSize is how much of a file its offer's head hash covers: enough to
// tell two files of the same name and size apart in practice, little to
// hold in memory before the offer. The key of a kept partial is (sender,
// path, size, head); the prefix hash then proves the bytes.
const HeadSize = 1 << 20

// Offer is a file a peer offers to send.
type Offer struct {
	// Name is the base name; Path, when set, the relative path inside a
	// folder (its last component is Name).
	Name, Path string
	Size       int64
	// Head is the hex SHA-256 of the first HeadSize bytes; "" means the
	// sender cannot resume (a partial is then never kept).
	Head string
}

// Rel is where the file goes, relative to the inbox.
func (o Offer) Rel() string {
	if o.Path != "" {
		return o.Path
	}
	return o.Name
}

// Sink receives what paired devices send.
type Sink interface {
	Text(from ident.Fingerprint, text string) error
	File(from ident.Fingerprint, o Offer) (FileWriter, error)
}

// FileWriter takes a file's bytes; Commit keeps it when the sum matches,
// Abort drops it, Suspend keeps what arrived for a resume (when the offer
// was resumable; else it is Abort).
type FileWriter interface {
	io.Writer
	// Have is what is already there of the file (a partial kept from a
	// broken transfer): its length and a SHA-256 that has taken those
	// bytes, as read back from disk. (0, a fresh hash) for a new file.
	Have() (int64, hash.Hash)
	Commit(sha256hex string) error
	Abort()
	Suspend()
	// OnStop sets how to end the transfer early (keeping the partial):
	// the inbox does when the same sender offers the same file again
	// while this transfer hangs.
	OnStop(func())
}

// ErrResumeMismatch: the receiver's partial is not the start of the file
// being sent; the receiver removed it, and the file must be sent again
// from its start.
var ErrResumeMismatch = errors.New("the receiver's partial file differs from this file; send it again")

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
	// bulk, when set, offers a page the bulk path (a Duplex's only).
	bulk *Bulk
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

// Sent is what a file send did.
type Sent struct {
	SHA256 string
	// Resumed is the bytes the receiver already had (not sent again).
	Resumed int64
	// Bulk: the bytes went on the page's bulk path.
	Bulk bool
}

// SendFile streams o.Size bytes of r as o, with back-pressure, and waits
// for the receiver to confirm the SHA-256, resuming where the receiver's
// partial of the same file ends. progress gets the bytes read of r.
func SendFile(ctx context.Context, dc *webrtc.DataChannel, o Offer, r io.Reader, progress func(int64)) (Sent, error) {
	return newSender(dc).file(ctx, o, r, progress)
}

// ReadHead reads the first HeadSize bytes of a file of size bytes from
// r and returns the offer's head hash and a reader of the whole file
// again (what was read, then the rest of r).
func ReadHead(r io.Reader, size int64) (string, io.Reader, error) {
	buf := make([]byte, min(size, HeadSize))
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", nil, fmt.Errorf("read the first %d bytes: %w", len(buf), err)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), io.MultiReader(bytes.NewReader(buf), r), nil
}

// SkipPrefix reads the first n bytes of src into h and reports whether
// their SHA-256 is prefix: the receiver's claim about its partial.
func SkipPrefix(h hash.Hash, src io.Reader, n, size int64, prefix string) (bool, error) {
	if n < 0 || n > size {
		return false, nil
	}
	if _, err := io.CopyN(h, src, n); err != nil {
		return false, fmt.Errorf("read the first %d bytes: %w", n, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == prefix, nil
}

func (s *sender) file(ctx context.Context, o Offer, r io.Reader, progress func(int64)) (Sent, error) {
	dc := s.dc
	size := o.Size
	head, src, err := ReadHead(r, size)
	if err != nil {
		return Sent{}, err
	}
	offer := message{T: "file", Name: o.Name, Path: o.Path, Size: size, Head: head}
	var x *bulkXfer
	if s.bulk != nil {
		if x = s.bulk.open(nil); x != nil {
			defer s.bulk.close(x)
			offer.Bulk = &x.grant
		}
	}
	if err := s.send(offer); err != nil {
		return Sent{}, err
	}
	m, err := s.reply(ctx)
	if err != nil {
		return Sent{}, err
	}
	if m.T != "ready" {
		return Sent{}, ackErr(m)
	}
	h := sha256.New()
	resumed := m.Offset
	sent := resumed
	if sent != 0 {
		ok, err := SkipPrefix(h, src, sent, size, m.Prefix)
		if err != nil {
			return Sent{}, err
		}
		if !ok {
			if err := s.send(message{T: "discard"}); err != nil {
				return Sent{}, err
			}
			s.reply(ctx) // the ack: the partial is gone
			return Sent{}, ErrResumeMismatch
		}
		if progress != nil {
			progress(sent)
		}
	}
	if x != nil && m.BulkOK {
		return s.viaBulk(ctx, x, src, h, o.Size, resumed, progress)
	}
	buf := make([]byte, chunkSize)
	for sent < size {
		n, err := io.ReadFull(src, buf[:min(int64(len(buf)), size-sent)])
		if err != nil {
			return Sent{}, fmt.Errorf("read after %d of %d bytes: %w", sent, size, err)
		}
		for dc.BufferedAmount() > highWater {
			select {
			case <-s.low:
			case m := <-s.replies: // an early refusal
				return Sent{}, ackErr(m)
			case <-ctx.Done():
				return Sent{}, fmt.Errorf("after %d of %d bytes: %w", sent, size, context.Cause(ctx))
			case <-s.gone:
				return Sent{}, fmt.Errorf("after %d of %d bytes: %w", sent, size, ErrGone)
			}
		}
		if err := dc.Send(buf[:n]); err != nil {
			return Sent{}, err
		}
		h.Write(buf[:n])
		sent += int64(n)
		if progress != nil {
			progress(sent)
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := s.send(message{T: "end", SHA256: sum}); err != nil {
		return Sent{}, err
	}
	if m, err = s.reply(ctx); err != nil {
		return Sent{}, err
	}
	return Sent{SHA256: sum, Resumed: resumed}, ackErr(m)
}

// viaBulk lets the page fetch the file's bytes from resumed on through
// x, then sends the end and waits for the page's check.
func (s *sender) viaBulk(ctx context.Context, x *bulkXfer, src io.Reader, h hash.Hash, size, resumed int64, progress func(int64)) (Sent, error) {
	stalled := make(chan struct{})
	watch := WatchProgress(func() { close(stalled) })
	defer watch.Done()
	sent := resumed
	x.src = bulkSource{r: src, left: size - resumed, h: h}
	x.src.served = func(n int64) {
		watch.Add(int(n))
		sent += n // x's turn held
		if progress != nil {
			progress(sent)
		}
	}
	if x.src.left == 0 {
		x.doneSet = true
		close(x.done)
	}
	close(x.ready) // the page's GETs may start
	select {
	case <-x.done: // h took every byte before done closed
	case m := <-s.replies: // an early refusal
		return Sent{}, ackErr(m)
	case <-ctx.Done():
		return Sent{}, fmt.Errorf("on the bulk path: %w", context.Cause(ctx))
	case <-s.gone:
		return Sent{}, fmt.Errorf("on the bulk path: %w", ErrGone)
	case <-stalled:
		return Sent{}, fmt.Errorf("on the bulk path: %w", ErrTooSlow)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := s.send(message{T: "end", SHA256: sum}); err != nil {
		return Sent{}, err
	}
	m, err := s.reply(ctx)
	if err != nil {
		return Sent{}, err
	}
	return Sent{SHA256: sum, Resumed: resumed, Bulk: true}, ackErr(m)
}
