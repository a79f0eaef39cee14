// Command pairing is the LAN pairing daemon and its command-line client.
// It parses flags and formats output; every decision lives in the
// discovery and pairing packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lanpairing/pairing/internal/termsafe"
	"github.com/lanpairing/pairing/pairing"
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

// streams are where a command writes.
type streams struct{ stdout, stderr io.Writer }

// commands are the subcommands, in the order help lists them.
func commands(o streams) []*cobra.Command {
	return []*cobra.Command{
		serveCommand(o), addrCommand(o), discoverCommand(o), statusCommand(o), qrCommand(o), joinCommand(o),
		peersCommand(o), unpairCommand(o), renameCommand(o), sendCommand(o), inboxCommand(o), diagCommand(o), turnCommand(o),
	}
}

// newRoot is the whole command line: spf13/cobra, so flags go before or
// after arguments, with --long and short forms, the usual help, and shell
// completions (pairing completion bash|zsh|fish).
func newRoot(o streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "pairing",
		Short: "pairing finds devices on the local network and pairs with them",
		Long: "pairing finds devices on the local network and pairs with them: a daemon (pairing serve)\n" +
			"announces this device, shows a QR code a phone or computer scans, and exchanges messages\n" +
			"and files with the devices paired to it.",
		Version:       pairing.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean '%s %s'?", c.Name(), strings.Join(s, "' or '"+c.Name()+" "))
			}
			return usageError{msg}
		},
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(o.stderr)
			c.Usage()
			return usageError{"no command given"}
		},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate("pairing {{.Version}}\n")
	root.SetOut(o.stdout)
	root.SetErr(o.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.AddCommand(commands(o)...)
	root.AddCommand(manCommand(root), versionCommand(o))
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

// versionCommand prints the version, as --version does.
func versionCommand(o streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version of pairing",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintf(o.stdout, "pairing %s\n", pairing.Version) },
	}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes one command line and returns the exit status: 0 success,
// 1 failure, 2 bad usage; errors go to stderr as one line, "pairing: …".
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(streams{stdout, stderr})
	root.SetArgs(args)
	c, err := root.ExecuteC()
	var ue usageError
	var he hintError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		if ue.msg != "no command given" {
			fmt.Fprintf(stderr, "pairing: %s\n", esc(lower(ue.msg)))
			if strings.HasPrefix(ue.msg, "unknown command") {
				fmt.Fprintf(stderr, "run 'pairing --help' for the commands\n")
			} else if c != nil && c != root {
				fmt.Fprintf(stderr, "usage: %s (see '%s --help')\n", c.UseLine(), c.CommandPath())
			}
		}
		return 2
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		// cobra's own usage errors: say them our way.
		fmt.Fprintf(stderr, "pairing: %s\n", esc(lower(strings.SplitN(err.Error(), "\n", 2)[0])))
		fmt.Fprintf(stderr, "run 'pairing --help' for the commands\n")
		return 2
	case errors.As(err, &he):
		fmt.Fprintf(stderr, "pairing: %s; hint: %s\n", esc(lower(err.Error())), he.hint)
		return 1
	case err.Error() == "":
		return 1 // the command already said why
	default:
		fmt.Fprintf(stderr, "pairing: %s\n", esc(lower(err.Error())))
		return 1
	}
}

// esc is a string that came from elsewhere (a device name, a file name,
// a text, an interface name, an error quoting one) as the terminal gets
// it: control and format characters escaped (termsafe.Escape), so that
// none acts on the terminal or makes the text read other than it is; a
// newline too (\n): every such string stays on its line. --json output
// is exact instead (writeJSON).
func esc(s string) string { return termsafe.Escape(s) }

// escAll is esc of v's default format (address lists: a zone is an
// interface name).
func escAll(v any) string { return esc(fmt.Sprint(v)) }

// newCommand is a subcommand whose positional arguments are between min
// and max (max < 0: any number); wrong counts are usage errors.
func newCommand(use, short, long string, min, max int) (*cobra.Command, *pflag.FlagSet) {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long + ".",
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case len(args) < min:
				return usageError{fmt.Sprintf("missing argument: %s", c.Use)}
			case max >= 0 && len(args) > max:
				return usageError{fmt.Sprintf("unexpected argument %q", args[max])}
			}
			return nil
		},
	}
	c.Flags().SortFlags = false
	return c, c.Flags()
}

func lower(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
