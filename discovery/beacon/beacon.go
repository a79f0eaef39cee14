package beacon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/internal/run"
)

// Beacon is a running beacon: it listens on the group port, answers
// queries, announces periodically and says goodbye on Close. It is the
// protocol; the sockets are its transport's.
type Beacon struct {
	cfg      Config
	net      transport
	instance uint64
	count    *counters
	g        *run.Group // the announce loop and the delayed replies

	mu       sync.Mutex
	limiters map[netip.Addr]*limiter
	pending  int
	closed   bool
}

type limiter struct {
	*rate.Limiter
	last time.Time
}

// New opens the sockets, joins the groups on every usable interface and
// starts the beacon: a query and a burst of announces, then periodic ones.
// Interfaces that cannot join are logged and retried later; New fails only
// when no socket can be opened at all.
func New(cfg Config) (*Beacon, error) {
	cfg.setDefaults()
	count := &counters{}
	t, err := openTransport(cfg, count, true)
	if err != nil {
		return nil, err
	}
	return start(cfg, t, count), nil
}

// start runs the protocol over t (already open, groups not joined yet).
func start(cfg Config, t transport, count *counters) *Beacon {
	b := &Beacon{cfg: cfg, net: t, instance: newInstance(), count: count,
		g: run.New(), limiters: map[netip.Addr]*limiter{}}
	if n := t.Join(); n == 0 {
		cfg.Logger.Warn("beacon: no interface could join the multicast group yet; will retry")
	}
	t.Listen(func(d Datagram) {
		if ev, ok := b.receive(d); ok {
			b.handle(d.V6, ev)
		}
	})
	b.g.Go(b.run)
	return b
}

func newInstance() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// packetFor builds a packet of type t saying what self says.
func packetFor(t Type, instance uint64, fp Fingerprint, self Self) *Packet {
	return &Packet{
		Type: t, Instance: instance, Fingerprint: fp,
		Port: self.Port, Name: self.Name, Addrs: self.Addrs,
		WindowOpen: self.WindowOpen, Hint: self.Hint,
	}
}

func (b *Beacon) packet(t Type) *Packet {
	return packetFor(t, b.instance, b.cfg.Fingerprint, b.cfg.Self())
}

// decodeFrom judges and decodes one datagram: sources Accept refuses,
// invalid packets and our own are counted and dropped.
func decodeFrom(cfg *Config, count *counters, instance uint64, d Datagram) (Event, bool) {
	if cfg.Accept != nil && !d.Multicast && !cfg.Accept(d.From.Addr()) {
		count.drop(ErrOffLink)
		return Event{}, false
	}
	p, err := Decode(d.Data)
	if err != nil {
		count.drop(err)
		cfg.Logger.Debug("beacon: dropped packet", "from", d.From, "err", err)
		return Event{}, false
	}
	if p.Instance == instance {
		count.own.Add(1)
		return Event{}, false
	}
	return Event{Packet: p, From: d.From, Interface: d.Interface, At: time.Now()}, true
}

func (b *Beacon) receive(d Datagram) (Event, bool) {
	return decodeFrom(&b.cfg, b.count, b.instance, d)
}

// multicast encodes p and sends it on every usable interface.
func (b *Beacon) multicast(p *Packet) (int, error) {
	buf, err := p.Append(nil)
	if err != nil {
		return 0, err
	}
	return b.net.Multicast(buf)
}

func (b *Beacon) run(ctx context.Context) {
	b.send(ctx, TypeQuery)
	// A device that has no address of its own yet (it is still working
	// them out, a few ms) does not announce an empty list: every peer
	// would call it to say where it sees it, 60 calls at once on a LAN
	// of 60 starting together. The owner announces when its addresses
	// come, and the burst follows anyway.
	if len(b.cfg.Self().Addrs) > 0 {
		b.send(ctx, TypeAnnounce)
	}
	// The start burst: two more announces at short jittered spacing, in
	// case the first was lost while the link settled.
	burst := []time.Duration{jitter(150 * time.Millisecond), jitter(600 * time.Millisecond)}
	next := time.NewTimer(burst[0])
	defer next.Stop()
	refresh := time.NewTicker(b.cfg.RefreshInterval)
	defer refresh.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			b.net.Join()
			b.pruneLimiters()
			i--
			continue
		case <-next.C:
		}
		b.send(ctx, TypeAnnounce)
		if i < len(burst) {
			next.Reset(burst[i])
		} else {
			next.Reset(jitter(b.cfg.AnnounceInterval))
		}
	}
}

// Refresh joins the groups on interfaces that appeared since the last
// check (call it when the network changed).
func (b *Beacon) Refresh() { b.net.Join() }

// Announce sends an announce now, e.g. after the own addresses changed.
func (b *Beacon) Announce() error {
	_, err := b.multicast(b.packet(TypeAnnounce))
	return err
}

// sendRetries and sendBackoff: a send that failed on every interface (a
// full socket buffer while many devices start at once, a link settling)
// is tried again after 20, 40 and 80 ms, jittered.
const (
	sendRetries = 3
	sendBackoff = 20 * time.Millisecond
)

func (b *Beacon) send(ctx context.Context, t Type) {
	var err error
	for i := range sendRetries + 1 {
		if _, err = b.multicast(b.packet(t)); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(sendBackoff << i)):
		}
	}
	b.cfg.Logger.Warn("beacon: send failed on every interface", "type", t, "err", err, "tries", sendRetries+1)
}

func (b *Beacon) handle(v6 bool, ev Event) {
	if ev.Packet.Type == TypeQuery {
		b.answer(v6, ev)
	}
	b.cfg.Handle(ev)
}

// answer replies to a query after a random delay, unicast to its source,
// unless that source is over its rate limit. The reply leaves from the
// ephemeral socket of the family the query came in on, so the querier
// sees a source address it can reach.
func (b *Beacon) answer(v6 bool, ev Event) {
	src := ev.From.Addr()
	b.mu.Lock()
	if b.closed || b.pending >= maxPendingReplies {
		b.mu.Unlock()
		b.count.rateLimited.Add(1)
		return
	}
	l := b.limiters[src]
	if l == nil {
		l = &limiter{Limiter: rate.NewLimiter(replyRate, replyBurst)}
		b.limiters[src] = l
	}
	l.last = ev.At
	if !l.Allow() {
		b.mu.Unlock()
		b.count.rateLimited.Add(1)
		return
	}
	b.pending++
	b.mu.Unlock()
	done := func() { b.mu.Lock(); b.pending--; b.mu.Unlock() }
	started := b.g.Go(func(ctx context.Context) {
		defer done()
		t := time.NewTimer(mrand.N(b.cfg.ReplyDelayMax + 1))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := b.packet(TypeReply)
		p.SeenAs = src.WithZone("")
		buf, err := p.Append(nil)
		if err == nil {
			err = b.net.Unicast(buf, ev.From, v6)
		}
		if err != nil {
			b.cfg.Logger.Debug("beacon: reply failed", "to", ev.From, "err", err)
		}
	})
	if !started {
		done()
	}
}

func (b *Beacon) pruneLimiters() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for a, l := range b.limiters {
		if time.Since(l.last) > time.Minute {
			delete(b.limiters, a)
		}
	}
}

// Instance is this beacon's instance nonce.
func (b *Beacon) Instance() uint64 { return b.instance }

// Stats returns a snapshot of the counters.
func (b *Beacon) Stats() Stats {
	st := b.count.snapshot()
	st.Joined = b.net.Joined()
	return st
}

// Close stops the announces and pending replies, sends a goodbye, then
// closes the sockets and waits for the readers. It is safe to call twice.
func (b *Beacon) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.g.Close()
	if _, err := b.multicast(b.packet(TypeGoodbye)); err != nil {
		b.cfg.Logger.Debug("beacon: goodbye not sent", "err", err)
	}
	b.net.Close()
	return nil
}

// jitter returns d ± 20 %.
func jitter(d time.Duration) time.Duration {
	return d*8/10 + mrand.N(d*4/10+1)
}
