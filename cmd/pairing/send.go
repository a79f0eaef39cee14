package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

func sendCommand(o streams) *cobra.Command {
	c, fs := newCommand("send PEER (TEXT... | --file F)", "send a text or a file to a paired device", "Send a text message or a file to a paired device (the running daemon connects): files go over a direct TLS connection when it connects, else a WebRTC data channel; texts over WebRTC", 1, -1)
	stdout, stderr := o.stdout, o.stderr
	socket := fs.String("socket", pairing.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	file := fs.StringP("file", "f", "", "send this `file` instead of a text")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	path := fs.String("path", "", "force the path of a file: tls (direct) or webrtc (data channel); default: the daemon's transfer setting (auto)")
	c.ValidArgsFunction = completePeer
	c.RegisterFlagCompletionFunc("path", cobra.FixedCompletions([]string{"tls", "webrtc"}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(_ *cobra.Command, rest []string) error {
		peer, text := rest[0], strings.Join(rest[1:], " ")
		if (text == "") == (*file == "") {
			return usageError{"send needs either a TEXT or --file F"}
		}
		cl := control.NewClient(*socket)
		var res *control.SendResult
		var err error
		if *file != "" {
			f, ferr := os.Open(*file)
			if ferr != nil {
				return ferr
			}
			defer f.Close()
			fi, ferr := f.Stat()
			if ferr != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", *file) // escaped by run
			}
			var body io.Reader = f
			stop := func() {}
			if colorOK(stderr) {
				body, stop = progress(stderr, f, fi.Size())
			}
			res, err = cl.Send(context.Background(), peer, "file", filepath.Base(*file), fi.Size(), body, *path)
			stop()
		} else {
			res, err = cl.Send(context.Background(), peer, "text", "", int64(len(text)), strings.NewReader(text), *path)
		}
		if err != nil {
			if errors.Is(err, control.ErrNoDaemon) {
				return daemonError(err)
			}
			return hintError{err, "is the device on the network? 'pairing peers' shows whether it is online; 'pairing diag' tells why a connection fails"}
		}
		if *asJSON {
			return writeJSON(stdout, res)
		}
		if *file != "" {
			mbps := float64(res.Bytes) * 8 / 1e6 / ((res.DurationMS - res.ConnectMS) / 1000)
			fmt.Fprintf(stdout, "sent %s (%d bytes) to %s over %s in %.0f ms (%.0f Mbit/s), SHA-256 %s confirmed\n", esc(res.Name), res.Bytes, esc(res.Peer), esc(res.Path), res.DurationMS, mbps, esc(res.SHA256[:min(16, len(res.SHA256))]))
		} else {
			fmt.Fprintf(stdout, "sent to %s in %.0f ms\n", esc(res.Peer), res.DurationMS)
		}
		return nil
	}
	return c
}

// progress wraps r with a progress line on w, redrawn a few times a second.
func progress(w io.Writer, r io.Reader, size int64) (io.Reader, func()) {
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%-60s\r", "")
				return
			case <-t.C:
				sent := n.Load()
				fmt.Fprintf(w, "\r%6.1f / %.1f MB  %3d%%", float64(sent)/1e6, float64(size)/1e6, sent*100/max(size, 1))
			}
		}
	}()
	return readerFunc(func(b []byte) (int, error) {
			k, err := r.Read(b)
			n.Add(int64(k))
			return k, err
		}), func() {
			close(done)
		}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func inboxCommand(o streams) *cobra.Command {
	c, fs := newCommand("inbox", "list what paired devices sent", "List the texts and files paired devices sent to this device", 0, 0)
	stdout := o.stdout
	socket := fs.String("socket", pairing.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	c.RunE = func(_ *cobra.Command, args []string) error {
		items, err := control.NewClient(*socket).Inbox(context.Background())
		if err != nil {
			return daemonError(err)
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
				what = fmt.Sprintf("%s (%d bytes)", esc(it.File), it.Size)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.At.Local().Format("2006-01-02 15:04"), orDash(it.Name), esc(it.Kind), what)
		}
		return tw.Flush()
	}
	return c
}
