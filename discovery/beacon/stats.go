package beacon

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

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

// snapshot copies the counters into a Stats (Joined is the transport's).
func (c *counters) snapshot() Stats {
	st := Stats{
		Received: c.received.Load(), Sent: c.sent.Load(),
		SendErrors: c.sendErrors.Load(), RateLimited: c.rateLimited.Load(),
		Own: c.own.Load(), Dropped: map[string]uint64{}, SendFailed: map[string]uint64{},
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.dropped {
		st.Dropped[k] = v
	}
	for k, v := range c.sendFailed {
		st.SendFailed[k] = v
	}
	return st
}
