package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/vishvananda/netlink"
)

const (
	// netDebounce gathers the burst of netlink messages one change makes
	// (address removed, route removed, address added, …) into one call.
	netDebounce = 150 * time.Millisecond
	// netPoll is the fallback when netlink is not available.
	netPoll = 2 * time.Second
)

// WatchNetwork calls onChange (from one goroutine) after interfaces or
// addresses change, until ctx ends. It listens to netlink address and
// link updates; when it cannot, it polls the interface list instead.
func WatchNetwork(ctx context.Context, log *slog.Logger, onChange func()) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	done := make(chan struct{})
	defer close(done)
	addrs := make(chan netlink.AddrUpdate, 64)
	links := make(chan netlink.LinkUpdate, 64)
	failed := make(chan error, 2)
	onErr := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr})
	if err == nil {
		err = netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr})
	}
	if err != nil {
		log.Info("network watch: netlink unavailable, polling", "err", err, "every", netPoll)
		poll(ctx, onChange)
		return
	}
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-failed:
			log.Warn("network watch: netlink failed, polling", "err", err, "every", netPoll)
			poll(ctx, onChange)
			return
		case <-addrs:
		case <-links:
		case <-fire:
			fire = nil
			onChange()
			continue
		}
		if fire == nil {
			fire = time.After(netDebounce)
		}
	}
}

// poll calls onChange when the interface snapshot changes.
func poll(ctx context.Context, onChange func()) {
	last := snapshot()
	t := time.NewTicker(netPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s := snapshot(); s != last {
			last = s
			onChange()
		}
	}
}

// snapshot describes every interface's flags and addresses.
func snapshot() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return err.Error()
	}
	s := ""
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		s += fmt.Sprintf("%d %s %v %v;", ifi.Index, ifi.Name, ifi.Flags, addrs)
	}
	return s
}
