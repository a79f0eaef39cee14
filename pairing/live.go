package pairing

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// Version is set at build time (-ldflags "-X …/pairing.Version=…").
var Version = "dev"

// Name is this device's current name.
func (d *Daemon) Name() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name
}

// interfaces lists the interfaces the daemon may use: all but ignored ones.
func (d *Daemon) interfaces() ([]net.Interface, error) {
	ifs, err := net.Interfaces()
	d.mu.Lock()
	ignore := d.ignore
	d.mu.Unlock()
	return slices.DeleteFunc(ifs, func(i net.Interface) bool { return slices.Contains(ignore, i.Name) }), err
}

// Reconfigure applies new settings to the running daemon: name, pair
// window, ignored interfaces and log level change live; it returns the
// settings that changed but need a restart.
func (d *Daemon) Reconfigure(s Settings) (restart []string) {
	d.mu.Lock()
	oldName, oldIgnore := d.name, d.ignore
	d.name, d.ignore = s.Name, s.IgnoreInterfaces
	addrs := slices.Clone(d.addrs)
	d.mu.Unlock()
	if d.adv != nil && oldName != s.Name {
		d.adv.SetName(s.Name, addrs)
	}
	d.window.SetLifetime(s.PairWindow)
	if d.cfg.LogLevel != nil {
		var lv slog.Level
		if lv.UnmarshalText([]byte(s.LogLevel)) == nil {
			d.cfg.LogLevel.Set(lv)
		}
	}
	if oldName != s.Name {
		d.log.Info("name changed", "from", oldName, "to", s.Name)
	}
	if !slices.Equal(oldIgnore, s.IgnoreInterfaces) {
		d.log.Info("ignored interfaces changed", "ignore", s.IgnoreInterfaces)
		d.Reacquire()
	}
	if d.beacon != nil {
		d.beacon.Announce()
	}
	if s.Listen != d.cfg.Listen {
		restart = append(restart, "listen")
	}
	if s.MDNS == d.cfg.NoMDNS {
		restart = append(restart, "mdns")
	}
	if inbox := cmp.Or(s.Inbox, filepath.Join(d.cfg.StateDir, "inbox")); inbox != d.cfg.Inbox.Dir {
		restart = append(restart, "inbox")
	}
	d.cfg.Inbox.SetLimits(s.MaxFileMB<<20, s.MaxInboxMB<<20)
	d.reconfigureWebRTC(s)
	return restart
}

// reconfigureWebRTC applies the WebRTC settings to the next connections.
// Kept connections close, so the next send uses the new settings.
func (d *Daemon) reconfigureWebRTC(s Settings) {
	d.mu.Lock()
	c := &d.cfg
	changed := !slices.Equal(c.STUN, s.STUN) || !slices.Equal(c.TURN, s.TURN) || c.TURNUser != s.TURNUser ||
		c.TURNPassword != s.TURNPassword || c.TURNSecret != s.TURNSecret || c.RelayOnly != s.RelayOnly
	c.STUN, c.TURN, c.TURNUser, c.TURNPassword, c.TURNSecret, c.RelayOnly = s.STUN, s.TURN, s.TURNUser, s.TURNPassword, s.TURNSecret, s.RelayOnly
	if s.ConnectionIdle > 0 {
		c.ConnectionIdle = s.ConnectionIdle
	}
	d.mu.Unlock()
	if changed {
		d.log.Info("webrtc settings changed; closing kept connections", "stun", len(s.STUN), "turn", len(s.TURN), "relay_only", s.RelayOnly)
		for _, ss := range d.dropKept() {
			ss.Close()
		}
	}
}

// Reacquire asks for a new own-address acquisition now.
func (d *Daemon) Reacquire() {
	select {
	case d.reacquire <- struct{}{}:
	default:
	}
}

// sdNotify tells systemd about a state change; without NOTIFY_SOCKET it
// does nothing.
func sdNotify(log *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Debug("sd_notify", "state", state, "err", err)
	}
}

// notifyReady says READY=1: the listener is up and the first acquisition
// has finished (its STATUS says whether it found an address, and why not).
func (d *Daemon) notifyReady() {
	d.lastStatus = d.statusLine()
	sdNotify(d.log, "READY=1\nSTATUS="+d.lastStatus)
}

// statusLine is the one-line summary systemd shows.
func (d *Daemon) statusLine() string {
	st := d.Status()
	var b strings.Builder
	switch len(st.Addresses) {
	case 0:
		why := "no reachable address"
		for _, s := range st.Stages {
			if s.Error != "" && s.Status == "fail" {
				why += "; " + s.Name + ": " + strings.SplitN(s.Error, "\n", 2)[0]
			}
		}
		b.WriteString(why)
	case 1:
		fmt.Fprintf(&b, "%s:%d", st.Addresses[0].IP, st.Port)
	default:
		fmt.Fprintf(&b, "%s:%d (+%d)", st.Addresses[0].IP, st.Port, len(st.Addresses)-1)
	}
	if st.Window.Open {
		fmt.Fprintf(&b, ", pairing window open for %s", time.Until(st.Window.Expires).Round(time.Second))
	} else {
		b.WriteString(", window closed")
	}
	fmt.Fprintf(&b, ", %d of %d paired online, %d devices seen", st.PairedOnline, st.Paired, len(st.Peers))
	return b.String()
}

// statusEvery is how often STATUS= is refreshed when it changed.
const statusEvery = 5 * time.Second

// notifyLoop pings the systemd watchdog at half its interval (when
// WATCHDOG_USEC asks for it) and refreshes STATUS= when it changed. The
// ping goes out only when the daemon answers its own Status, so a
// deadlocked daemon gets restarted.
func (d *Daemon) notifyLoop(ctx context.Context) {
	wd, _ := sd.SdWatchdogEnabled(false)
	every := statusEvery
	if wd > 0 {
		every = min(every, wd/2)
		d.log.Info("systemd watchdog on", "interval", wd)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case <-d.acquired:
		default:
			continue // not READY yet
		}
		line := d.statusLine()
		if wd > 0 {
			sdNotify(d.log, "WATCHDOG=1")
		}
		if line != d.lastStatus {
			d.lastStatus = line
			sdNotify(d.log, "STATUS="+line)
		}
	}
}
