// Command pairing is the LAN pairing daemon and its command-line client.
// It parses flags and formats output; every decision lives in the
// discovery and pairing packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// hintError carries a hint for the person at the terminal.
type hintError struct {
	err  error
	hint string
}

func (e hintError) Error() string { return e.err.Error() }
func (e hintError) Unwrap() error { return e.err }

type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "[flags]", "run the daemon: find own addresses, announce, pair", runServe},
		{"addr", "[--json]", "run the staged own-address acquisition and show every stage", runAddr},
		{"discover", "[--timeout D] [--first] [--json]", "list devices on the LAN that answer a discovery query", runDiscover},
		{"status", "[--json]", "show what the running daemon is doing", runStatus},
		{"qr", "[--png FILE] [--json] [--link]", "open a pairing window and show its QR code, URL and code", runQR},
		{"join", "URL [--json] [--code C]", "pair with the device whose QR code or link is URL", runJoin},
		{"peers", "[--json]", "list paired devices, online state, addresses", runPeers},
		{"unpair", "PEER", "forget a paired device (ID, ID prefix or name)", runUnpair},
		{"send", "PEER (TEXT | --file F)", "send a text or a file to a paired device (WebRTC)", runSend},
		{"inbox", "[--json]", "list what paired devices sent", runInbox},
		{"diag", "[--json] [--out FILE]", "find out why discovery or pairing fails on this network", runDiag},
		{"turn-credentials", "--secret S --user U [--ttl D]", "mint TURN REST credentials (coturn use-auth-secret)", runTURNCredentials},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "pairing finds devices on the local network and pairs with them.\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  pairing %-16s %-34s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'pairing COMMAND --help' for a command's flags.\n")
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes one command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ue usageError
		var he hintError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "pairing: %s\n", lower(ue.msg))
			fmt.Fprintf(stderr, "usage: pairing %s %s (see 'pairing %s --help')\n", c.name, c.args, c.name)
			return 2
		case errors.As(err, &he):
			fmt.Fprintf(stderr, "pairing: %s; hint: %s\n", lower(err.Error()), he.hint)
			return 1
		case err.Error() == "":
			return 1 // the command already said why
		default:
			fmt.Fprintf(stderr, "pairing: %s\n", lower(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "pairing: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// newFlags returns a flag set whose parse errors become usage errors.
func newFlags(name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pairing %s %s\n\n%s.\n\nFlags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; a bad flag or stray argument is a usage error, and
// --help prints the flags to stdout.
func parse(fs *flag.FlagSet, args []string, maxArgs int, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	}
	if err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > maxArgs {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(maxArgs))}
	}
	return nil
}

func lower(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
