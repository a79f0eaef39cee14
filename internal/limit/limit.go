// Package limit is the bounds on what strangers on the LAN can make the
// daemon do: rate limits per source address (IPv6 by /64) in a map of
// fixed size, and a counter of open connections per source and in total.
package limit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Key is the source a limit counts: an IPv4 address, or the /64 of an
// IPv6 one (a host gets a whole /64 and picks addresses at will).
func Key(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is4() || !a.IsValid() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// PerSource is a token bucket per source, at most Max sources. When full,
// sources whose bucket has refilled are forgotten first (they lose
// nothing), then the least recently seen. Safe for concurrent use.
type PerSource struct {
	Rate  rate.Limit
	Burst int
	Max   int

	mu  sync.Mutex
	by  map[netip.Addr]*bucket
	seq uint64 // orders the buckets by use
}

type bucket struct {
	lim  *rate.Limiter
	used uint64 // seq at the last use
}

// bucket returns src's bucket, making room for it (p.mu held).
func (p *PerSource) bucket(src netip.Addr, now time.Time) *bucket {
	k := Key(src)
	if p.by == nil {
		p.by = map[netip.Addr]*bucket{}
	}
	b := p.by[k]
	if b == nil {
		if len(p.by) >= max(p.Max, 1) {
			p.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(p.Rate, p.Burst)}
		p.by[k] = b
	}
	p.seq++
	b.used = p.seq
	return b
}

func (p *PerSource) evict(now time.Time) {
	var oldest netip.Addr
	var at uint64
	for k, b := range p.by {
		if b.lim.TokensAt(now) >= float64(p.Burst) {
			delete(p.by, k)
			continue
		}
		if at == 0 || b.used < at {
			oldest, at = k, b.used
		}
	}
	if len(p.by) >= max(p.Max, 1) {
		delete(p.by, oldest)
	}
}

// Allow takes one token of src's bucket, reporting whether there was one.
func (p *PerSource) Allow(src netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bucket(src, now).lim.AllowN(now, 1)
}

// Has reports whether src has a token left, without taking it.
func (p *PerSource) Has(src netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.by[Key(src)]
	return b == nil || b.lim.TokensAt(now) >= 1
}

// Take takes a token of src's bucket (a failure that counts).
func (p *PerSource) Take(src netip.Addr, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bucket(src, now).lim.AllowN(now, 1)
}

// Len is how many sources are remembered.
func (p *PerSource) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.by)
}

// Conns counts open connections per source and in total. Safe for
// concurrent use.
type Conns struct {
	PerSource int
	Total     int

	mu    sync.Mutex
	by    map[netip.Addr]int
	total int
}

// Open counts a new connection from src, or reports false when src or
// everyone is at the limit (the connection must then be closed).
func (c *Conns) Open(src netip.Addr) bool {
	k := Key(src)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[netip.Addr]int{}
	}
	if c.total >= c.Total || c.by[k] >= c.PerSource {
		return false
	}
	c.by[k]++
	c.total++
	return true
}

// Close uncounts a connection Open counted.
func (c *Conns) Close(src netip.Addr) {
	k := Key(src)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by[k] <= 1 {
		delete(c.by, k)
	} else {
		c.by[k]--
	}
	c.total--
}

// Count is how many connections are open.
func (c *Conns) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
