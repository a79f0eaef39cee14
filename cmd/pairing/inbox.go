package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
)

func inboxCommand(o streams) *cobra.Command {
	c, fs := newCommand("inbox", "list what paired devices sent, or clear it", "List the texts and files paired devices sent to this device, each file with the path it is at; --get copies a file out through the daemon, --clear deletes the files and the list", 0, 0)
	stdout, stderr := o.stdout, o.stderr
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	clear := fs.Bool("clear", false, "delete the received files the list names (no other file in the inbox directory) and the list; asks first on a terminal")
	yes := fs.BoolP("yes", "y", false, "with --clear: do not ask (needed when stdin is not a terminal)")
	get := fs.StringP("get", "g", "", "copy the received file `NAME` (as listed) out through the daemon, for a member of group pairing who may not enter the service's state directory")
	out := fs.StringP("out", "o", "", "with --get: write to `PATH` (default: NAME in the current directory; - for stdout); an existing file is never replaced")
	c.RunE = func(_ *cobra.Command, args []string) error {
		cl := control.NewClient(*socket)
		if *get != "" {
			return getInboxFile(cl, *get, *out, stdout)
		}
		items, err := cl.Inbox(context.Background())
		if err != nil {
			return daemonError(err)
		}
		if *clear {
			return clearInbox(cl, items, *yes, *asJSON, stdout, stderr)
		}
		if *asJSON {
			return writeJSON(stdout, items)
		}
		if len(items) == 0 {
			fmt.Fprintln(stdout, "the inbox is empty")
			return nil
		}
		// One line per item: a text's newlines and tabs show as \n and
		// \t (esc), the exact text is in --json.
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, it := range items {
			what := esc(it.Text)
			if it.Kind == "file" {
				what = fmt.Sprintf("%s (%s)", esc(cmp.Or(it.Path, it.File)), humanSize(it.Size))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.At.Local().Format("2006-01-02 15:04"), orDash(it.Name), esc(it.Kind), what)
		}
		return tw.Flush()
	}
	return c
}

// clearInbox asks (on a terminal) or wants --yes, then clears the inbox.
func clearInbox(cl *control.Client, items []control.InboxItem, yes, asJSON bool, stdout, stderr io.Writer) error {
	var files, texts int
	var size int64
	for _, it := range items {
		if it.Kind == "file" {
			files++
			size += it.Size
		} else {
			texts++
		}
	}
	if !yes {
		if !isTerminal(os.Stdin) {
			return usageError{"inbox --clear deletes files: add --yes when stdin is not a terminal"}
		}
		fmt.Fprintf(stderr, "delete %d received files (%s) and %d texts? [y/N] ", files, humanSize(size), texts)
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(stderr, "nothing deleted")
			return errors.New("")
		}
	}
	res, err := cl.ClearInbox(context.Background())
	if err != nil {
		return daemonError(err)
	}
	if asJSON {
		return writeJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "deleted %d files (%s) and %d texts", res.Files, humanSize(res.Bytes), res.Texts)
	if res.Missing > 0 {
		fmt.Fprintf(stdout, "; %d files were gone already", res.Missing)
	}
	fmt.Fprintln(stdout)
	return nil
}

// isTerminal reports whether f is a terminal (not just a character
// device: /dev/null is one too).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// getInboxFile copies the received file name to path (never over an
// existing file) or stdout.
func getInboxFile(cl *control.Client, name, path string, stdout io.Writer) error {
	r, err := cl.InboxFile(context.Background(), name)
	if err != nil {
		if errors.Is(err, control.ErrNoDaemon) || errors.Is(err, control.ErrNotAllowed) {
			return daemonError(err)
		}
		return hintError{err, "'pairing inbox' lists the received files by name"}
	}
	defer r.Close()
	if path == "-" {
		_, err := io.Copy(stdout, r)
		return err
	}
	path = cmp.Or(path, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	fmt.Fprintf(stdout, "copied %s (%s) to %s\n", esc(name), humanSize(n), esc(path))
	return nil
}
