package beacon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/internal/mcast"
)

// Defaults. Each is a field of Config; zero values mean these.
var (
	// DefaultGroup4 is organisation-local (239.255/16): routers never
	// forward it, and it is unlikely to clash with SSDP or mDNS.
	DefaultGroup4 = netip.MustParseAddr("239.255.80.65")
	// DefaultGroup6 is link-local scope ("PAIR" in the low bytes).
	DefaultGroup6 = netip.MustParseAddr("ff02::5041:4952")
)

const (
	// DefaultPort is below Linux's ephemeral range (32768+), so no
	// outgoing connection takes it by chance.
	DefaultPort = 27280
	// DefaultAnnounceInterval keeps traffic low (one small packet per
	// interface every 30 s) while the query at start finds peers at once.
	DefaultAnnounceInterval = 30 * time.Second
	// DefaultReplyDelayMax spreads the replies of N devices to one query
	// while keeping the first answer well under 20 ms.
	DefaultReplyDelayMax = 10 * time.Millisecond
	// DefaultRefreshInterval is how often interfaces are checked for new
	// ones to join.
	DefaultRefreshInterval = 5 * time.Second
	// replyRate and replyBurst bound replies per source address: a
	// discover sends a handful of queries; a flood gets at most this.
	replyRate  = rate.Limit(10)
	replyBurst = 20
	// maxPendingReplies bounds delayed replies in flight (spoofed sources
	// could otherwise each get a goroutine).
	maxPendingReplies = 64
)

// Self is what this device says about itself in announces and replies.
type Self struct {
	Name       string
	Port       uint16
	Addrs      []netip.Addr
	WindowOpen bool
	Hint       []byte
}

// Event is one packet received from another process.
type Event struct {
	Packet    *Packet
	From      netip.AddrPort // source; link-local IPv6 carries its zone
	Interface string         // receiving interface, "" when unknown
	At        time.Time
}

// Config configures a Beacon or a Query. The zero value of every field
// but Handle means its default.
type Config struct {
	Port             int
	Group4, Group6   netip.Addr
	AnnounceInterval time.Duration
	ReplyDelayMax    time.Duration
	RefreshInterval  time.Duration
	// Fingerprint identifies this device; zero for an anonymous querier.
	Fingerprint Fingerprint
	// Self returns what to announce; nil announces nothing but the
	// fingerprint.
	Self func() Self
	// Handle gets every valid packet from another process. It runs on the
	// reader goroutines (one per socket, so concurrently) and must not block.
	Handle func(Event)
	// Interfaces lists interfaces; nil means net.Interfaces.
	Interfaces func() ([]net.Interface, error)
	// Accept, when set, judges the source of a unicast packet (a group's
	// packets never cross a router) before anything else: packets it
	// refuses (off-link, spoofed) are dropped, counted as "off_link".
	Accept func(from netip.Addr) bool
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if !c.Group4.IsValid() {
		c.Group4 = DefaultGroup4
	}
	if !c.Group6.IsValid() {
		c.Group6 = DefaultGroup6
	}
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.ReplyDelayMax == 0 {
		c.ReplyDelayMax = DefaultReplyDelayMax
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Interfaces == nil {
		c.Interfaces = net.Interfaces
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Self == nil {
		c.Self = func() Self { return Self{} }
	}
	if c.Handle == nil {
		c.Handle = func(Event) {}
	}
}

// Stats counts what a Beacon did. Dropped counts invalid packets by
// reason: short, too_large, magic, version, type, field, off_link.
type Stats struct {
	Received    uint64            `json:"received"`
	Sent        uint64            `json:"sent"`
	SendErrors  uint64            `json:"send_errors"`
	SendFailed  map[string]uint64 `json:"send_failed"` // by errno name
	RateLimited uint64            `json:"rate_limited"`
	Own         uint64            `json:"own"`
	Dropped     map[string]uint64 `json:"dropped"`
	Joined      []string          `json:"joined"` // "eth0/v4", "eth0/v6"
}

type counters struct {
	received, sent, sendErrors, rateLimited, own atomic.Uint64
	mu                                           sync.Mutex
	dropped                                      map[string]uint64
	sendFailed                                   map[string]uint64 // by errno name
}

// sendError counts a failed send by its reason (ENOBUFS, ENETUNREACH, …).
func (c *counters) sendError(err error) {
	c.sendErrors.Add(1)
	reason := "other"
	var errno syscall.Errno
	if errors.As(err, &errno) {
		reason = unix.ErrnoName(errno)
	}
	c.mu.Lock()
	if c.sendFailed == nil {
		c.sendFailed = map[string]uint64{}
	}
	c.sendFailed[reason]++
	c.mu.Unlock()
}

// dropReasons are the keys of Stats.Dropped.
var dropReasons = []struct {
	err error
	key string
}{
	{ErrShort, "short"}, {ErrTooLarge, "too_large"}, {ErrMagic, "magic"},
	{ErrVersion, "version"}, {ErrType, "type"}, {ErrField, "field"}, {ErrOffLink, "off_link"},
}

func (c *counters) drop(err error) {
	reason := "invalid"
	for _, r := range dropReasons {
		if errors.Is(err, r.err) {
			reason = r.key
			break
		}
	}
	c.mu.Lock()
	if c.dropped == nil {
		c.dropped = map[string]uint64{}
	}
	c.dropped[reason]++
	c.mu.Unlock()
}

// endpoint is the sending side: an ephemeral socket per family that sends
// to the groups per interface and receives unicast replies.
type endpoint struct {
	cfg      Config
	instance uint64
	u4, u6   *socket
	count    *counters
}

func newEndpoint(cfg Config, count *counters) (*endpoint, error) {
	e := &endpoint{cfg: cfg, count: count}
	var b [8]byte
	rand.Read(b[:])
	e.instance = binary.BigEndian.Uint64(b[:])
	var err4, err6 error
	e.u4, err4 = listenUDP(false, 0)
	e.u6, err6 = listenUDP(true, 0)
	if err4 != nil && err6 != nil {
		return nil, fmt.Errorf("%w: %v; %v", ErrNoInterface, err4, err6)
	}
	if err6 != nil {
		cfg.Logger.Debug("beacon: no IPv6 socket", "err", err6)
	}
	return e, nil
}

func (e *endpoint) sockets() []*socket {
	var s []*socket
	for _, x := range []*socket{e.u4, e.u6} {
		if x != nil {
			s = append(s, x)
		}
	}
	return s
}

func (e *endpoint) close() {
	for _, s := range e.sockets() {
		s.Close()
	}
}

func (e *endpoint) packet(t Type) *Packet {
	self := e.cfg.Self()
	return &Packet{
		Type: t, Instance: e.instance, Fingerprint: e.cfg.Fingerprint,
		Port: self.Port, Name: self.Name, Addrs: self.Addrs,
		WindowOpen: self.WindowOpen, Hint: self.Hint,
	}
}

// multicast sends p to both groups on every usable interface. It returns
// how many sends worked; an error only when none did.
func (e *endpoint) multicast(p *Packet) (int, error) {
	b, err := p.Append(nil)
	if err != nil {
		return 0, err
	}
	ifs, err := e.cfg.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("list interfaces: %w", err)
	}
	sent := 0
	var errs []error
	for _, s := range e.sockets() {
		group := netip.AddrPortFrom(e.cfg.Group4, uint16(e.cfg.Port))
		if s.V6 {
			group = netip.AddrPortFrom(e.cfg.Group6, uint16(e.cfg.Port))
		}
		for _, ifi := range ifs {
			if ok, _ := multicastInterface(ifi, s.V6); !ok {
				continue
			}
			if err := s.WriteTo(b, group, ifi.Index); err != nil {
				e.count.sendError(err)
				errs = append(errs, fmt.Errorf("%s: %w", ifi.Name, err))
				continue
			}
			e.count.sent.Add(1)
			sent++
		}
	}
	if sent == 0 {
		errs = append(errs, ErrNoInterface)
		return 0, errors.Join(errs...)
	}
	for _, err := range errs {
		e.cfg.Logger.Debug("beacon: send failed on one interface", "type", p.Type, "err", err)
	}
	return sent, nil
}

// readLoop reads s until it is closed and hands every packet to handle.
func (e *endpoint) readLoop(s *socket, handle func(*socket, Event)) {
	buf := make([]byte, MaxPacketSize+1) // one more byte reveals oversize
	for {
		n, from, ifindex, dst, err := s.ReadDst(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.cfg.Logger.Debug("beacon: read", "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		e.count.received.Add(1)
		if e.cfg.Accept != nil && !dst.IsMulticast() && !e.cfg.Accept(from.Addr()) {
			e.count.drop(ErrOffLink)
			continue
		}
		p, err := Decode(buf[:n])
		if err != nil {
			e.count.drop(err)
			e.cfg.Logger.Debug("beacon: dropped packet", "from", from, "err", err)
			continue
		}
		if p.Instance == e.instance {
			e.count.own.Add(1)
			continue
		}
		handle(s, Event{Packet: p, From: from, Interface: mcast.InterfaceName(ifindex), At: time.Now()})
	}
}

// Beacon is a running beacon: it listens on the group port, answers
// queries, announces periodically and says goodbye on Close.
type Beacon struct {
	*endpoint
	g4, g6 *socket

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	joined   map[string]bool
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
	b := &Beacon{joined: map[string]bool{}, limiters: map[netip.Addr]*limiter{}}
	var err error
	if b.endpoint, err = newEndpoint(cfg, &counters{}); err != nil {
		return nil, err
	}
	var err4, err6 error
	b.g4, err4 = listenUDP(false, cfg.Port)
	b.g6, err6 = listenUDP(true, cfg.Port)
	if err4 != nil && err6 != nil {
		b.endpoint.close()
		return nil, fmt.Errorf("%w: listen on port %d: %v; %v", ErrNoInterface, cfg.Port, err4, err6)
	}
	if err6 != nil {
		cfg.Logger.Info("beacon: IPv6 unavailable", "err", err6)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if n := b.refresh(); n == 0 {
		cfg.Logger.Warn("beacon: no interface could join the multicast group yet; will retry")
	}
	for _, s := range b.allSockets() {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.readLoop(s, b.handle)
		}()
	}
	b.wg.Add(1)
	go b.run()
	return b, nil
}

func (b *Beacon) allSockets() []*socket {
	s := b.sockets()
	for _, x := range []*socket{b.g4, b.g6} {
		if x != nil {
			s = append(s, x)
		}
	}
	return s
}

// refresh joins the groups on interfaces not joined yet and returns how
// many memberships exist.
func (b *Beacon) refresh() int {
	ifs, err := b.cfg.Interfaces()
	if err != nil {
		b.cfg.Logger.Warn("beacon: list interfaces", "err", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range []*socket{b.g4, b.g6} {
		if s == nil {
			continue
		}
		fam, group := "v4", b.cfg.Group4
		if s.V6 {
			fam, group = "v6", b.cfg.Group6
		}
		for _, ifi := range ifs {
			key := fmt.Sprintf("%s/%s", ifi.Name, fam)
			ok, why := multicastInterface(ifi, s.V6)
			if !ok {
				if b.joined[key] {
					b.cfg.Logger.Info("beacon: interface unusable", "interface", ifi.Name, "family", fam, "reason", why)
					delete(b.joined, key)
				}
				continue
			}
			if b.joined[key] {
				continue
			}
			if err := s.Join(&ifi, group); err != nil {
				b.cfg.Logger.Info("beacon: cannot join group; skipping interface", "interface", ifi.Name, "family", fam, "err", err)
				continue
			}
			b.joined[key] = true
			b.cfg.Logger.Debug("beacon: joined group", "interface", ifi.Name, "group", group)
		}
	}
	return len(b.joined)
}

func (b *Beacon) run() {
	defer b.wg.Done()
	b.send(TypeQuery)
	// A device that has no address of its own yet (it is still working
	// them out, a few ms) does not announce an empty list: every peer
	// would call it to say where it sees it, 60 calls at once on a LAN
	// of 60 starting together. The owner announces when its addresses
	// come, and the burst follows anyway.
	if len(b.cfg.Self().Addrs) > 0 {
		b.send(TypeAnnounce)
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
		case <-b.ctx.Done():
			return
		case <-refresh.C:
			b.refresh()
			b.pruneLimiters()
			i--
			continue
		case <-next.C:
		}
		b.send(TypeAnnounce)
		if i < len(burst) {
			next.Reset(burst[i])
		} else {
			next.Reset(jitter(b.cfg.AnnounceInterval))
		}
	}
}

// Refresh joins the groups on interfaces that appeared since the last
// check (call it when the network changed).
func (b *Beacon) Refresh() { b.refresh() }

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

func (b *Beacon) send(t Type) {
	var err error
	for i := range sendRetries + 1 {
		if _, err = b.multicast(b.packet(t)); err == nil {
			return
		}
		select {
		case <-b.ctx.Done():
			return
		case <-time.After(jitter(sendBackoff << i)):
		}
	}
	b.cfg.Logger.Warn("beacon: send failed on every interface", "type", t, "err", err, "tries", sendRetries+1)
}

func (b *Beacon) handle(s *socket, ev Event) {
	if ev.Packet.Type == TypeQuery {
		b.answer(s, ev)
	}
	b.cfg.Handle(ev)
}

// answer replies to a query after a random delay, unicast to its source,
// unless that source is over its rate limit.
func (b *Beacon) answer(s *socket, ev Event) {
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
	b.wg.Add(1)
	b.mu.Unlock()
	// Reply from the ephemeral socket of the same family, so the querier
	// sees a source address it can reach.
	out := b.u4
	if s.V6 {
		out = b.u6
	}
	go func() {
		defer b.wg.Done()
		defer func() { b.mu.Lock(); b.pending--; b.mu.Unlock() }()
		t := time.NewTimer(mrand.N(b.cfg.ReplyDelayMax + 1))
		defer t.Stop()
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		p := b.packet(TypeReply)
		p.SeenAs = src.WithZone("")
		buf, err := p.Append(nil)
		if err == nil && out != nil {
			err = out.WriteTo(buf, ev.From, 0)
		}
		if err != nil {
			b.count.sendError(err)
			b.cfg.Logger.Debug("beacon: reply failed", "to", ev.From, "err", err)
			return
		}
		b.count.sent.Add(1)
	}()
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
	st := Stats{
		Received: b.count.received.Load(), Sent: b.count.sent.Load(),
		SendErrors: b.count.sendErrors.Load(), RateLimited: b.count.rateLimited.Load(),
		Own: b.count.own.Load(), Dropped: map[string]uint64{}, SendFailed: map[string]uint64{},
	}
	b.count.mu.Lock()
	for k, v := range b.count.dropped {
		st.Dropped[k] = v
	}
	for k, v := range b.count.sendFailed {
		st.SendFailed[k] = v
	}
	b.count.mu.Unlock()
	b.mu.Lock()
	for k := range b.joined {
		st.Joined = append(st.Joined, k)
	}
	b.mu.Unlock()
	return st
}

// Close sends a goodbye, stops every goroutine and closes the sockets. It
// is safe to call twice.
func (b *Beacon) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	if _, err := b.multicast(b.packet(TypeGoodbye)); err != nil {
		b.cfg.Logger.Debug("beacon: goodbye not sent", "err", err)
	}
	for _, s := range b.allSockets() {
		s.Close()
	}
	b.wg.Wait()
	return nil
}

// Query sends a query on every usable interface (again after 250 ms and
// 1 s, in case one was lost) and calls handle for every reply until ctx is
// done or handle returns false. Announces from other devices arrive only
// on the group port, so a Query sees replies only. It fails when no
// interface could send the first query.
func Query(ctx context.Context, cfg Config, handle func(Event) bool) error {
	cfg.setDefaults()
	e, err := newEndpoint(cfg, &counters{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		e.close()
		wg.Wait()
	}()
	var mu sync.Mutex // handle is called from one goroutine at a time
	for _, s := range e.sockets() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.readLoop(s, func(_ *socket, ev Event) {
				mu.Lock()
				defer mu.Unlock()
				if ev.Packet.Type != TypeReply || ctx.Err() != nil {
					return
				}
				if !handle(ev) {
					cancel()
				}
			})
		}()
	}
	if _, err := e.multicast(e.packet(TypeQuery)); err != nil {
		return err
	}
	for _, d := range []time.Duration{250 * time.Millisecond, 750 * time.Millisecond} {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		e.multicast(e.packet(TypeQuery))
	}
	<-ctx.Done()
	return nil
}

// jitter returns d ± 20 %.
func jitter(d time.Duration) time.Duration {
	return d*8/10 + mrand.N(d*4/10+1)
}
