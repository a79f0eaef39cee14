package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "[flags]", "Run the pairing daemon: find which own addresses others can reach, announce the device on the LAN and answer discovery queries")
	stateDir := fs.String("state-dir", pairing.DefaultStateDir(), "directory for the identity and paired devices (mode 0700); env PAIRING_STATE_DIR")
	socket := fs.String("socket", pairing.DefaultSocket(), "control socket path; env PAIRING_SOCKET")
	listen := fs.String("listen", pairing.DefaultListen, "TCP address of the pairing listener (port 0: the OS chooses)")
	name := fs.String("name", pairing.DefaultName(), "device name shown to other devices (1-63 bytes)")
	logFormat := fs.String("log-format", "text", "log format on stderr: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	open := fs.Bool("open", false, "open a pairing window at start; log its URL (and show the QR code when stderr is a terminal)")
	window := fs.Duration("pair-window", pairing.DefaultWindowLifetime, "how long a pairing window stays open")
	if err := parse(fs, args, 0, stdout); err != nil {
		return err
	}
	if err := beacon.ValidName(*name); err != nil {
		return usageError{"bad --name: " + err.Error()}
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *window <= 0 {
		return usageError{"--pair-window must be positive"}
	}
	cfg := pairing.Config{StateDir: *stateDir, Socket: *socket, Listen: *listen, Name: *name, Logger: log, Open: *open, PairWindow: *window}
	if colorOK(stderr) {
		cfg.OnWindow = func(w control.Window, open bool) {
			if !open {
				return
			}
			if text, err := pairing.QRText(w.URL, true); err == nil {
				fmt.Fprintf(stderr, "\n%s\nscan to pair with %s, or on another computer: pairing join '%s'\n\n", text, w.Name, w.URL)
			}
		}
	}
	d, err := pairing.Start(cfg)
	switch {
	case errors.Is(err, pairing.ErrLocked):
		return hintError{err, "a daemon already runs on this state directory ('pairing status'); stop it or use another --state-dir"}
	case err != nil:
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-d.Acquired():
		st := d.Status()
		log.Info("ready", "id", st.ID, "port", st.Port, "addresses", len(st.Addresses), "socket", *socket)
	case s := <-sig:
		log.Info("stopping", "signal", s.String())
		return d.Close()
	}
	s := <-sig
	log.Info("stopping", "signal", s.String())
	return d.Close()
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("bad --log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("bad --log-format %q: want text or json", format)}
}
