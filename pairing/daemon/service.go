package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/run"
)

// statusEvery is how often STATUS= is refreshed when it changed.
const statusEvery = 5 * time.Second

// service is the daemon as the system sees it: the control socket, and
// systemd's notifications (READY, STATUS, WATCHDOG, STOPPING).
type service struct {
	log      *slog.Logger
	status   func() control.Status
	acquired <-chan struct{}
	since    time.Time // when the daemon started
	group    *run.Group
	socket   string
	srv      *http.Server

	mu         sync.Mutex
	lastStatus string // the STATUS= line last sent
}

func newService(log *slog.Logger, status func() control.Status, acquired <-chan struct{}) *service {
	return &service{log: log, status: status, acquired: acquired, since: time.Now(), group: run.New()}
}

// listen opens the control socket (mode 0660), replacing a stale socket
// file but never a live daemon's, and serves h on it.
func (v *service) listen(path string, h http.Handler) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("control socket %s: another daemon is listening there", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	// A send streams a whole file through the socket: no body limit or
	// read/write deadline there (the socket is for root and its group).
	v.socket = path
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8 << 10,
		ErrorLog: slog.NewLogLogger(v.log.Handler(), slog.LevelDebug)}
	v.srv = srv
	// The goroutine has its own reference: close clears v.srv, and may
	// run before the goroutine does.
	v.group.Go(func(context.Context) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			v.log.Error("control socket: server stopped", "err", err)
		}
	})
	return nil
}

// started is when the daemon started.
func (v *service) started() time.Time { return v.since }

// start runs the notify loop.
func (v *service) start() { v.group.Go(v.notifyLoop) }

// close stops the control server (waiting at most until ctx ends for
// requests in flight), removes the socket and waits for the goroutines.
func (v *service) close(ctx context.Context) {
	if v.srv != nil {
		v.srv.Shutdown(ctx)
		os.Remove(v.socket)
		v.srv = nil
	}
	v.group.Close()
}

// sdNotify tells systemd about a state change; without NOTIFY_SOCKET it
// does nothing.
func (v *service) sdNotify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		v.log.Debug("sd_notify", "state", state, "err", err)
	}
}

// ready says READY=1: the listener is up and the first acquisition has
// finished (its STATUS says whether it found an address, and why not).
func (v *service) ready() {
	line := statusLine(v.status())
	v.mu.Lock()
	v.lastStatus = line
	v.mu.Unlock()
	v.sdNotify("READY=1\nSTATUS=" + line)
}

func (v *service) stopping() { v.sdNotify("STOPPING=1") }

// notifyLoop pings the systemd watchdog at half its interval (when
// WATCHDOG_USEC asks for it) and refreshes STATUS= when it changed. The
// ping goes out only when the daemon answers its own Status, so a
// deadlocked daemon gets restarted.
func (v *service) notifyLoop(ctx context.Context) {
	wd, _ := sd.SdWatchdogEnabled(false)
	every := statusEvery
	if wd > 0 {
		every = min(every, wd/2)
		v.log.Info("systemd watchdog on", "interval", wd)
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
		case <-v.acquired:
		default:
			continue // not READY yet
		}
		line := statusLine(v.status())
		if wd > 0 {
			v.sdNotify("WATCHDOG=1")
		}
		v.mu.Lock()
		changed := line != v.lastStatus
		v.lastStatus = line
		v.mu.Unlock()
		if changed {
			v.sdNotify("STATUS=" + line)
		}
	}
}

// statusLine is the one-line summary systemd shows.
func statusLine(st control.Status) string {
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
