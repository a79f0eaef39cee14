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
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
)

// replyBacklog bounds what our answers to a peer (acks, pongs, errors) may
// have waiting in the channel's send buffer, beyond our own file's
// chunks. A peer that sends requests and never reads the answers (its
// SCTP window closed) would otherwise grow that buffer without end: past
// the bound its channel is closed. Answers are a few dozen bytes each, so
// an honest peer has a handful in flight.
const replyBacklog = 256 << 10

// ErrBacklog: the peer does not read our answers.
var ErrBacklog = errors.New("the peer does not read its answers; channel closed")

// sendBounded sends b on dc unless more than limit bytes already wait in
// its send buffer; then it closes dc instead (once is for that close).
func sendBounded(dc *webrtc.DataChannel, b []byte, limit uint64, once *sync.Once, log *slog.Logger) error {
	if dc.BufferedAmount() > limit {
		once.Do(func() {
			log.Warn("webrtc: closing a data channel whose peer does not read", "backlog_bytes", dc.BufferedAmount(), "limit", limit)
			go dc.Close() // not from inside pion's message callback
		})
		return ErrBacklog
	}
	return dc.SendText(string(b))
}

// Serve handles what a paired device sends on dc, into sink. Call it
// before the channel opens (Answer's onChannel). It returns at once; the
// work happens in the channel's callbacks.
func Serve(dc *webrtc.DataChannel, from ident.Fingerprint, sink Sink, log *slog.Logger) {
	var closeOnce sync.Once
	r := &receiver{from: from, sink: sink, log: log}
	r.reply = func(m message) {
		b, _ := json.Marshal(m)
		sendBounded(dc, b, replyBacklog, &closeOnce, log)
	}
	dc.OnMessage(func(m webrtc.DataChannelMessage) { r.take(m.IsString, m.Data) })
	// A connection that ends mid-file leaves no partial file behind.
	dc.OnClose(r.interrupted)
}

// Duplex is one data channel used both ways, as a browser page's is:
// what the peer sends (texts, files, pings) goes to a receiver into a
// sink, and the peer's replies to what we send (ack, ready, pong) go to
// the send in flight. The same protocol as between daemons. Sends take
// turns.
type Duplex struct {
	s         *sender
	r         *receiver
	log       *slog.Logger
	turn      sync.Mutex // one send at a time
	once      sync.Once
	closeOnce sync.Once
	sending   atomic.Bool // a file of ours is in the send buffer
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
	d := &Duplex{s: s, log: log}
	d.r = &receiver{from: from, sink: sink, log: log, reply: func(m message) { d.Reply(m) }}
	return d
}

// Reply sends one control message (JSON) to the peer: an answer, not a
// send that waits for one. A peer that lets answers pile up unread has its
// channel closed (see replyBacklog).
func (d *Duplex) Reply(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	limit := uint64(replyBacklog)
	if d.sending.Load() {
		limit += highWater + chunkSize
	}
	return sendBounded(d.s.dc, b, limit, &d.closeOnce, d.log)
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
	d.r.take(isString, data)
}

// UseBulk offers the peer (a page) the bulk path of b for its files, both
// ways. Call it before the channel opens.
func (d *Duplex) UseBulk(b *Bulk) {
	d.s.bulk = b
	d.r.bulk.b = b
}

// Closed ends the sends in flight and drops a file half received.
func (d *Duplex) Closed() {
	d.once.Do(func() { close(d.s.gone) })
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
func (d *Duplex) SendFile(ctx context.Context, o Offer, r io.Reader, progress func(int64)) (Sent, error) {
	d.turn.Lock()
	defer d.turn.Unlock()
	d.drain()
	d.sending.Store(true)
	defer d.sending.Store(false)
	return d.s.file(ctx, o, r, progress)
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

// receiver is the receiving side of the protocol: one file at a time,
// which must keep moving (see Progress).
type receiver struct {
	from  ident.Fingerprint
	sink  Sink
	log   *slog.Logger
	reply func(message) // an answer to the peer; nil: dropped

	mu    sync.Mutex
	w     FileWriter
	name  string // the file's relative path, for the log
	h     hash.Hash
	n     fileBytes // the file's counts
	bad   error     // the file is refused; its bytes are dropped
	watch *Progress
	bulk  receiverBulk
}

// receiverBulk is a receiver's bulk path: b, when set, lets a page send a
// file's bytes over it; x is the current file's transfer, and used says
// its bytes came that way.
type receiverBulk struct {
	b    *Bulk
	x    *bulkXfer
	used bool
}

// fileBytes count the bytes of the file being received.
type fileBytes struct {
	got   int64 // received, with those of the kept partial
	from0 int64 // the bytes the kept partial had
	want  int64 // announced
}

// take handles one message of the peer and sends the answers.
func (r *receiver) take(isString bool, data []byte) {
	r.mu.Lock()
	replies := r.handle(isString, data)
	r.mu.Unlock()
	r.send(replies...)
}

func (r *receiver) send(ms ...message) {
	if r.reply == nil {
		return
	}
	for _, m := range ms {
		r.reply(m)
	}
}

// interrupted suspends the file being received, if any: its partial is
// kept for a resume when the offer was resumable.
func (r *receiver) interrupted() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil && r.bad == nil {
		r.w.Suspend()
		r.log.Warn("inbox: transfer interrupted", "from", r.from.ID(), "got", r.n.got, "of", r.n.want)
	}
	r.w = nil
	r.unwatch()
}

// unwatch stops the progress watch of the current file, and its bulk
// transfer (r.mu held).
func (r *receiver) unwatch() {
	if r.watch != nil {
		r.watch.Done()
		r.watch = nil
	}
	if r.bulk.x != nil {
		r.bulk.b.close(r.bulk.x)
		r.bulk.x = nil
	}
}

// bulkWrite takes a chunk of fw's bytes from the bulk path, as if it came
// on the channel; the error is why the file was refused, if it was.
func (r *receiver) bulkWrite(fw FileWriter, data []byte) error {
	r.mu.Lock()
	var replies []message
	err := r.bad
	if r.w != fw {
		err = errors.New("the transfer ended")
	} else if err == nil {
		r.bulk.used = true
		replies = r.handle(false, data)
		err = r.bad
	}
	r.mu.Unlock()
	r.send(replies...)
	return err
}

// tooSlow ends file w when it stopped moving (from its watch), or when
// the inbox stops it (why ErrSuperseded).
func (r *receiver) tooSlow(w FileWriter, why error) {
	r.mu.Lock()
	if r.w != w || r.bad != nil {
		r.mu.Unlock()
		return
	}
	r.bad = fmt.Errorf("%w (%d of %d bytes)", why, r.n.got, r.n.want)
	w.Suspend() // a stalled network: what arrived is kept for a resume
	r.unwatch()
	r.log.Warn("inbox: transfer ended", "from", r.from.ID(), "got", r.n.got, "of", r.n.want, "why", why)
	bad := r.bad
	r.mu.Unlock()
	r.send(ack(bad))
}

// ErrSuperseded: the sender offered the same file again while this
// transfer of it hung; the new one takes up what arrived.
var ErrSuperseded = errors.New("a new transfer of the same file took over")

func ack(err error) message {
	if err != nil {
		return message{T: "ack", Error: err.Error()}
	}
	return message{T: "ack", OK: true}
}

// handle takes one message of the peer and returns the replies (r.mu
// held).
func (r *receiver) handle(isString bool, data []byte) []message {
	if !isString {
		if r.w == nil || r.bad != nil {
			return nil
		}
		r.n.got += int64(len(data))
		if r.n.got > r.n.want {
			r.bad = fmt.Errorf("more bytes than announced (%d)", r.n.want)
			r.w.Abort()
			r.unwatch()
			return []message{ack(r.bad)}
		}
		if _, err := r.w.Write(data); err != nil {
			r.bad = err
			r.w.Abort()
			r.unwatch()
			return []message{ack(err)}
		}
		r.h.Write(data)
		r.watch.Add(len(data))
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
			r.w.Suspend() // the sender gave up on it and moved on
		}
		r.unwatch()
		o := Offer{Name: msg.Name, Path: msg.Path, Size: msg.Size, Head: msg.Head}
		r.w, r.name, r.h, r.n, r.bad, r.bulk.used = nil, o.Rel(), sha256.New(), fileBytes{want: msg.Size}, nil, false
		fw, err := r.sink.File(r.from, o)
		if err != nil {
			r.bad = err
			r.log.Warn("inbox: file refused", "from", r.from.ID(), "name", o.Rel(), "size", msg.Size, "err", err)
			return []message{ack(err)}
		}
		r.w = fw
		r.watch = WatchProgress(func() { r.tooSlow(fw, ErrTooSlow) })
		fw.OnStop(func() { r.tooSlow(fw, ErrSuperseded) })
		ready := message{T: "ready"}
		if n, h := fw.Have(); n > 0 {
			r.n.got, r.n.from0, r.h = n, n, h
			ready.Offset, ready.Prefix = n, hex.EncodeToString(h.Sum(nil))
		}
		if msg.BulkOK && r.bulk.b != nil {
			if x := r.bulk.b.open(func(b []byte) error { return r.bulkWrite(fw, b) }); x != nil {
				r.bulk.x, ready.Bulk = x, &x.grant
			}
		}
		return []message{ready}
	case "discard":
		if r.w != nil && r.bad == nil {
			r.w.Abort()
			r.log.Warn("inbox: partial file removed: the sender's file differs", "from", r.from.ID(), "name", r.name)
		}
		r.unwatch()
		r.w, r.bad = nil, errors.New("discarded")
		return []message{ack(nil)}
	case "end":
		if r.bad != nil || r.w == nil {
			return nil // already answered
		}
		r.unwatch()
		var err error
		switch sum := hex.EncodeToString(r.h.Sum(nil)); {
		case r.n.got != r.n.want:
			err = fmt.Errorf("got %d bytes, announced %d", r.n.got, r.n.want)
		case sum != msg.SHA256:
			err = fmt.Errorf("SHA-256 mismatch: got %s, sender says %s", sum, msg.SHA256)
		}
		if err == nil {
			err = r.w.Commit(msg.SHA256)
		} else {
			r.w.Abort()
		}
		r.w = nil
		if err == nil {
			r.log.Info("received", "peer", r.from.ID(), "name", r.name, "bytes", r.n.want, "resumed_from", r.n.from0, "moved", r.n.got-r.n.from0, "path", r.path())
		} else {
			r.log.Warn("inbox: file refused", "from", r.from.ID(), "name", r.name, "err", err)
		}
		return []message{ack(err)}
	default:
		return []message{ack(fmt.Errorf("unknown message %q", msg.T))}
	}
}

// path is how the current file's bytes came, for the log.
func (r *receiver) path() string {
	if r.bulk.used {
		return "bulk"
	}
	return "webrtc"
}
