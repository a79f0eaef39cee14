package session

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// pingTimeout bounds the check that a kept connection still works: a LAN
// answers in milliseconds.
const pingTimeout = time.Second

// kept is an open connection to a paired device, waiting for the next send.
type kept struct {
	s    *rtc.Session
	dc   *webrtc.DataChannel
	idle *time.Timer
}

// pool is the connections kept for the next send, one per device.
type pool struct {
	log *slog.Logger

	mu     sync.Mutex
	kept   map[ident.Fingerprint]*kept
	closed bool
}

func newPool(log *slog.Logger) *pool {
	return &pool{log: log, kept: map[ident.Fingerprint]*kept{}}
}

// take removes the kept connection to fp from the pool, if there is one.
func (p *pool) take(fp ident.Fingerprint) *kept {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.kept[fp]
	if k != nil {
		delete(p.kept, fp)
		k.idle.Stop()
	}
	return k
}

// keep puts a connection that just served a send into the pool, where it
// closes after idle. A second one to the same device (two sends at once)
// is closed instead, and so is every one after close.
func (p *pool) keep(fp ident.Fingerprint, s *rtc.Session, dc *webrtc.DataChannel, idle time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.kept[fp] != nil {
		go s.Close()
		return
	}
	k := &kept{s: s, dc: dc}
	k.idle = time.AfterFunc(idle, func() {
		p.mu.Lock()
		mine := p.kept[fp] == k
		if mine {
			delete(p.kept, fp)
		}
		p.mu.Unlock()
		if mine {
			p.log.Info("webrtc: closing idle connection", "peer", fp.ID(), "idle", idle)
			s.Close()
		}
	})
	p.kept[fp] = k
}

// reuse returns the kept connection to fp when it still answers a ping.
func (p *pool) reuse(ctx context.Context, fp ident.Fingerprint) (*rtc.Session, *webrtc.DataChannel) {
	k := p.take(fp)
	if k == nil {
		return nil, nil
	}
	select {
	case <-k.s.Done():
		p.log.Info("webrtc: kept connection was closed; reconnecting", "peer", fp.ID())
	default:
		if k.dc.ReadyState() != webrtc.DataChannelStateOpen {
			p.log.Info("webrtc: kept connection was closed; reconnecting", "peer", fp.ID(), "channel", k.dc.ReadyState().String())
			break
		}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := rtc.Ping(pctx, k.dc)
		cancel()
		if err == nil {
			return k.s, k.dc
		}
		p.log.Info("webrtc: kept connection does not answer; reconnecting", "peer", fp.ID(), "err", err)
	}
	k.s.Close()
	return nil, nil
}

// drop empties the pool and returns its connections; with final, the
// pool keeps nothing from now on.
func (p *pool) drop(final bool) []*rtc.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = p.closed || final
	var ss []*rtc.Session
	for fp, k := range p.kept {
		k.idle.Stop()
		ss = append(ss, k.s)
		delete(p.kept, fp)
	}
	return ss
}

// keepSessions is how many WebRTC sessions status remembers.
const keepSessions = 16

// recent is the latest sessions, for status; the oldest beyond
// keepSessions is forgotten, never closed (an established transfer must
// not end because strangers connected): each session is closed by whoever
// made it.
type recent struct {
	mu sync.Mutex
	ss []*rtc.Session
}

func (r *recent) add(s *rtc.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ss = append(r.ss, s)
	if len(r.ss) > keepSessions {
		r.ss = slices.Delete(r.ss, 0, 1)
	}
}

func (r *recent) list() []*rtc.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ss)
}

// clear forgets every session and returns them.
func (r *recent) clear() []*rtc.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.ss
	r.ss = nil
	return ss
}

// pages is the open browser pages, by browser: how a message or a file
// reaches a paired phone.
type pages struct {
	mu sync.Mutex
	by map[ident.Fingerprint]page
}

// page is an open page's channel, used both ways.
type page struct {
	dc *webrtc.DataChannel
	d  *rtc.Duplex
}

func (p *pages) set(fp ident.Fingerprint, pg page) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by == nil {
		p.by = map[ident.Fingerprint]page{}
	}
	p.by[fp] = pg
}

// remove forgets fp's page if dc is still it.
func (p *pages) remove(fp ident.Fingerprint, dc *webrtc.DataChannel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by[fp].dc == dc {
		delete(p.by, fp)
	}
}

// get is fp's open page, or ErrPageClosed.
func (p *pages) get(fp ident.Fingerprint) (*rtc.Duplex, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pg, ok := p.by[fp]
	if !ok {
		return nil, ErrPageClosed
	}
	return pg.d, nil
}

// open lists the browsers whose page is open.
func (p *pages) open() []ident.Fingerprint {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ident.Fingerprint, 0, len(p.by))
	for fp := range p.by {
		out = append(out, fp)
	}
	return out
}
