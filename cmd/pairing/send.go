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
			switch control.ReasonOf(err) {
			case control.ReasonUnknownPeer:
				return hintError{err, "'pairing peers' lists the paired devices; pair a new one with 'pairing qr'"}
			case control.ReasonAmbiguousPeer:
				return hintError{err, "type more of the name, or the device's ID"}
			case control.ReasonPageClosed:
				return hintError{err, "a phone gets messages while its page is open: open the bookmark, or scan the code again"}
			}
			if errors.Is(err, control.ErrNoDaemon) || errors.Is(err, control.ErrNotAllowed) {
				return daemonError(err)
			}
			return hintError{err, "is the device on the network? 'pairing peers' shows whether it is online; 'pairing diag' tells why a connection fails"}
		}
		if *asJSON {
			return writeJSON(stdout, res)
		}
		if *file != "" {
			fmt.Fprintf(stdout, "sent %s (%s) to %s over %s in %.0f ms%s, SHA-256 %s confirmed\n", esc(res.Name), humanSize(res.Bytes), esc(res.Peer), esc(res.Path), res.DurationMS, rate(res), esc(res.SHA256[:min(16, len(res.SHA256))]))
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
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				io.WriteString(w, "\r\x1b[K") // the result line starts on a clean line
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
			<-stopped
		}
}

// Below these a transfer's rate says more about the set-up than the link:
// it is not shown.
const (
	minRateBytes = 1_000_000
	minRateMS    = 200
)

// rate is " (N Mbit/s)" for a transfer large and long enough to measure.
func rate(res *control.SendResult) string {
	ms := res.DurationMS - res.ConnectMS
	if res.Bytes < minRateBytes || ms < minRateMS {
		return ""
	}
	return fmt.Sprintf(" (%.0f Mbit/s)", float64(res.Bytes)*8/1e6/(ms/1000))
}

// humanSize is n bytes as people read it: 512 bytes, 3.0 MB, 1.2 GB
// (powers of 1000, as file managers count).
func humanSize(n int64) string {
	const k = 1000
	switch {
	case n < k:
		return fmt.Sprintf("%d bytes", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1f GB", float64(n)/(k*k*k))
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }
