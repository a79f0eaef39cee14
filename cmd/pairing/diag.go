package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lanpairing/pairing/diag"
	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/termsafe"
)

func diagCommand(o streams) *cobra.Command {
	c, fs := newCommand("diag", "find out why discovery or pairing fails on this network", "Run the network diagnostics: interfaces, the daemon, routes, the packet filter, own addresses, multicast, paired devices, peers, mDNS, WebRTC and the clock. Each step gathers facts; one analysis over all of them draws the verdicts, and each finding names the facts it rests on. It never stops at the first failure; the exit status is 0 whenever pairing by QR code can work", 0, 0)
	stdout, stderr := o.stdout, o.stderr
	asJSON := fs.BoolP("json", "j", false, "print the report as JSON")
	out := fs.StringP("out", "o", "", "also write the report as JSON to `FILE` (for a bug report)")
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	stateDir := fs.String("state-dir", config.DefaultStateDir(), "state directory (own identity, paired devices)")
	configPath := fs.String("config", config.DefaultConfigPath(), "config file with the STUN and TURN servers")
	logLevel := fs.String("log-level", "", "log every step on stderr at this level (default: with --json info, else off)")
	c.RegisterFlagCompletionFunc("log-level", completeLevels)
	c.RunE = func(_ *cobra.Command, args []string) error {
		s := config.DefaultSettings()
		explicit := false
		fs.Visit(func(f *pflag.Flag) { explicit = explicit || f.Name == "config" })
		if err := config.LoadConfig(*configPath, explicit, &s); err != nil {
			return usageError{err.Error()}
		}
		level := *logLevel
		if level == "" && *asJSON {
			level = "info"
		}
		log := slog.New(slog.DiscardHandler)
		if level != "" {
			var err error
			if log, err = newLogger(stderr, "text", level, new(slog.LevelVar)); err != nil {
				return err
			}
		}
		color := colorOK(stdout)
		// The report holds outside strings (peers' names, interface names,
		// errors): escaped on their way out, the colour marks kept.
		text := termsafe.Writer{W: stdout, Color: color}
		cfg := diag.Config{Socket: *socket, StateDir: *stateDir, WebRTC: s.WebRTC, Logger: log}
		if !*asJSON {
			fmt.Fprintf(stdout, "pairing diag: %d steps, at most %s\n\n", diag.StepCount(), diag.MaxDuration)
			if colorOK(stderr) {
				// Live progress on a terminal; the verdicts come at the
				// end, drawn from every step's facts.
				cfg.Progress = func(name string, ms float64) { fmt.Fprintf(stderr, "\r\x1b[K  %s (%.0f ms)", name, ms) }
			}
		}
		rep := diag.Run(context.Background(), cfg)
		if cfg.Progress != nil {
			fmt.Fprint(stderr, "\r\x1b[K")
		}
		if *out != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
		}
		if *asJSON {
			if err := writeJSON(stdout, rep); err != nil {
				return err
			}
		} else {
			diag.WriteReport(text, rep, color)
		}
		if !rep.OK {
			return errDiagFailed
		}
		return nil
	}
	return c
}

// errDiagFailed: the report says what failed; exit 1 without more text.
var errDiagFailed = errors.New("")
