package beacon

import (
	"context"
	"sync"
	"time"
)

// Query sends a query on every usable interface (again after 250 ms and
// 1 s, in case one was lost) and calls handle for every reply until ctx is
// done or handle returns false. Announces from other devices arrive only
// on the group port, so a Query sees replies only. It fails when no
// interface could send the first query.
func Query(ctx context.Context, cfg Config, handle func(Event) bool) error {
	cfg.setDefaults()
	count := &counters{}
	t, err := openTransport(cfg, count, false)
	if err != nil {
		return err
	}
	return query(ctx, cfg, t, count, handle)
}

// query runs the querying side of the protocol over t and closes t.
func query(ctx context.Context, cfg Config, t transport, count *counters, handle func(Event) bool) error {
	instance := newInstance()
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		t.Close()
	}()
	var mu sync.Mutex // handle is called from one goroutine at a time
	t.Listen(func(d Datagram) {
		ev, ok := decodeFrom(&cfg, count, instance, d)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if ev.Packet.Type != TypeReply || ctx.Err() != nil {
			return
		}
		if !handle(ev) {
			cancel()
		}
	})
	send := func() error {
		buf, err := packetFor(TypeQuery, instance, cfg.Fingerprint, cfg.Self()).Append(nil)
		if err != nil {
			return err
		}
		_, err = t.Multicast(buf)
		return err
	}
	if err := send(); err != nil {
		return err
	}
	for _, d := range []time.Duration{250 * time.Millisecond, 750 * time.Millisecond} {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		send()
	}
	<-ctx.Done()
	return nil
}
