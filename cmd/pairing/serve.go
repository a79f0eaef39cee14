package main

import (
	"cmp"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/daemon"
)

func serveCommand(o streams) *cobra.Command {
	c, fs := newCommand("serve", "run the daemon: find own addresses, announce, pair", "Run the pairing daemon: find which own addresses others can reach, announce the device on the LAN, and pair with devices that scan its QR code. Settings come from the config file; flags override it", 0, 0)
	stderr := o.stderr
	def := config.DefaultSettings()
	configPath := fs.String("config", config.DefaultConfigPath(), "config `file` (key = value lines); a missing default file is fine; env PAIRING_CONFIG")
	stateDir := fs.String("state-dir", config.DefaultStateDir(), "directory for the identity and paired devices (mode 0700); env PAIRING_STATE_DIR")
	socket := fs.String("socket", config.DefaultSocket(), "control socket path; env PAIRING_SOCKET")
	noMDNS := fs.Bool("no-mdns", false, "do not advertise or browse by mDNS; config key mdns = false")
	open := fs.Bool("open", false, "open a pairing window at start; log its URL (and show the QR code when stderr is a terminal)")
	fs.String("listen", def.Listen, "TCP address of the pairing listener (port 0: the OS chooses on the first start, later starts keep it, so phone bookmarks survive restarts); config key listen")
	fs.String("name", def.Name, "device name shown to other devices (1-63 bytes); config key name")
	fs.Duration("pair-window", def.PairWindow, "how long a pairing window stays open; config key pair-window")
	fs.String("log-format", def.LogFormat, "log format on stderr: text or json; config key log-format")
	fs.String("log-level", def.LogLevel, "log level: debug, info, warn or error; config key log-level")
	c.RegisterFlagCompletionFunc("log-level", completeLevels)
	c.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(_ *cobra.Command, args []string) error {
		explicit := map[string]bool{}
		fs.Visit(func(f *pflag.Flag) { explicit[f.Name] = true })
		// settings reads the config file and lays the flags given on the
		// command line over it; SIGHUP calls it again.
		settings := func() (config.Settings, error) {
			s := config.DefaultSettings()
			if err := config.LoadConfig(*configPath, explicit["config"], &s); err != nil {
				return s, err
			}
			var err error
			fs.Visit(func(f *pflag.Flag) {
				switch f.Name {
				case "name", "listen", "pair-window", "log-format", "log-level":
					if e := config.SetSetting(&s, f.Name, f.Value.String()); e != nil && err == nil {
						err = usageError{fmt.Sprintf("bad --%s: %v", f.Name, e)}
					}
				}
			})
			if *noMDNS {
				s.MDNS = false
			}
			return s, err
		}
		s, err := settings()
		if err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return err
			}
			return usageError{err.Error()}
		}
		level := new(slog.LevelVar)
		logOut := stderr
		var scr *screen
		if f, ok := stderr.(*os.File); ok && *open && termWidth(f) > 0 {
			// The QR code on this terminal, with the logs around it.
			cols, rows := termSize(f)
			scr = newScreen(stderr, cols, rows, colorOK(stderr))
			logOut = scr
		}
		log, err := newLogger(logOut, s.LogFormat, s.LogLevel, level)
		if err != nil {
			return err
		}
		cfg := daemon.Config{StateDir: *stateDir, Socket: *socket, Settings: s, Logger: log, LogLevel: level, Open: *open}
		if scr != nil {
			cfg.OnWindow = scr.window
		}
		// A watchdog kill is SIGABRT: Go would then print every goroutine
		// (hundreds of journal lines). One line that sums them up is
		// enough, unless GOTRACEBACK or log-level debug asks for the dump.
		if os.Getenv("GOTRACEBACK") == "" && s.LogLevel != "debug" {
			abort := make(chan os.Signal, 1)
			signal.Notify(abort, syscall.SIGABRT)
			go func() {
				<-abort
				log.Error("aborted (by the watchdog?); goroutines by state and function", "summary", goroutineSummary(10))
				os.Exit(134)
			}()
		}
		d, err := daemon.Start(cfg)
		switch {
		case errors.Is(err, pairing.ErrLocked):
			return hintError{err, "a daemon already runs on this state directory ('pairing status'); stop it or use another --state-dir"}
		case err != nil:
			return err
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sig)
		ready := d.Acquired()
		for {
			select {
			case <-ready:
				st := d.Status()
				log.Info("ready", "id", st.ID, "port", st.Port, "addresses", len(st.Addresses), "socket", *socket, "config", *configPath)
				ready = nil
			case got := <-sig:
				if got != syscall.SIGHUP {
					if scr != nil {
						scr.close()
					}
					log.Info("stopping", "signal", got.String())
					start := time.Now()
					err := d.Close()
					log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
					return err
				}
				next, err := settings()
				if err != nil {
					log.Error("config reload failed; keeping the running settings", "err", err)
					continue
				}
				for _, k := range d.Reconfigure(next) {
					log.Warn("setting changed but needs a restart", "key", k)
				}
				if next.LogFormat != s.LogFormat {
					log.Warn("setting changed but needs a restart", "key", "log-format")
				}
				s = next
				log.Info("config reloaded", "config", *configPath, "name", next.Name)
			}
		}
	}
	return c
}

func newLogger(w io.Writer, format, level string, lv *slog.LevelVar) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("bad --log-level %q: want debug, info, warn or error", level)}
	}
	lv.Set(l)
	if underJournal() {
		// Under systemd: the journal's native protocol, with priorities
		// and fields (journalctl -p warning, PEER_ID=…).
		if h, err := newJournalHandler(lv); err == nil {
			return slog.New(h), nil
		}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("bad --log-format %q: want text or json", format)}
}

// goroutineSummary counts the goroutines by state and top function, the
// max most common first: a one-line picture of a hung daemon.
func goroutineSummary(max int) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	counts := map[string]int{}
	total := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.SplitN(g, "\n", 3)
		if len(lines) < 2 || !strings.HasPrefix(lines[0], "goroutine ") {
			continue
		}
		state := lines[0][strings.IndexByte(lines[0], '[')+1:]
		state = strings.SplitN(strings.TrimSuffix(state, "]:"), ",", 2)[0]
		fn := lines[1]
		if i := strings.LastIndexByte(fn, '('); i > 0 {
			fn = fn[:i]
		}
		counts[state+" "+fn]++
		total++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(counts[b]-counts[a], strings.Compare(a, b)) })
	if len(keys) > max {
		keys = keys[:max]
	}
	parts := []string{fmt.Sprintf("%d goroutines", total)}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d× %s", counts[k], k))
	}
	return strings.Join(parts, "; ")
}
