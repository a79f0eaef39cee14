package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

func sendCommand(o streams) *cobra.Command {
	c, fs := newCommand("send PEER (TEXT... | --file F...)", "send a text, files or folders to a paired device", "Send a text message, files or folders to a paired device (the running daemon connects): files go over a direct TLS connection when it connects, else a WebRTC data channel; texts over WebRTC. A folder arrives as a folder, with the relative paths inside it. A transfer that broke off resumes where it stopped when the same file is sent again to the same device", 1, -1)
	stdout, stderr := o.stdout, o.stderr
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	files := fs.StringArrayP("file", "f", nil, "send this `file` or folder instead of a text (repeat for several)")
	asJSON := fs.BoolP("json", "j", false, "print JSON (an array when several files go)")
	path := fs.String("path", "", "force the path of a file: tls (direct) or webrtc (data channel); default: the daemon's transfer setting (auto)")
	c.ValidArgsFunction = completePeer
	c.RegisterFlagCompletionFunc("path", cobra.FixedCompletions([]string{"tls", "webrtc"}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(_ *cobra.Command, rest []string) error {
		peer, text := rest[0], strings.Join(rest[1:], " ")
		if (text == "") == (len(*files) == 0) {
			return usageError{"send needs either a TEXT or --file F"}
		}
		cl := control.NewClient(*socket)
		fail := func(err error) error {
			switch control.ReasonOf(err) {
			case control.ReasonUnknownPeer:
				return hintError{err, "'pairing peers' lists the paired devices; pair a new one with 'pairing qr'"}
			case control.ReasonAmbiguousPeer:
				return hintError{err, "type more of the name, or the device's ID"}
			case control.ReasonPageClosed:
				return hintError{err, "a phone gets messages while its page is open: open the bookmark, or scan the code again"}
			case control.ReasonRefused:
				return hintError{err, "the device said why; what arrived is kept, so sending the same file again resumes"}
			}
			if errors.Is(err, control.ErrNoDaemon) || errors.Is(err, control.ErrNotAllowed) {
				return daemonError(err)
			}
			return hintError{err, "is the device on the network? 'pairing peers' shows whether it is online; 'pairing diag' tells why a connection fails"}
		}
		if text != "" {
			res, err := cl.Send(context.Background(), peer, "text", "", int64(len(text)), strings.NewReader(text), *path)
			if err != nil {
				return fail(err)
			}
			if *asJSON {
				return writeJSON(stdout, res)
			}
			fmt.Fprintf(stdout, "sent to %s in %.0f ms\n", esc(res.Peer), res.DurationMS)
			return nil
		}
		// Every name is checked before anything is sent.
		tree, err := pairing.Tree(*files)
		if err != nil {
			return err // escaped by run
		}
		var results []*control.SendResult
		for _, tf := range tree {
			res, err := sendFile(cl, stderr, peer, tf, *path)
			if err != nil {
				if len(tree) > 1 {
					err = fmt.Errorf("%s: %w", tf.Rel, err)
				}
				return fail(err)
			}
			results = append(results, res)
			if *asJSON {
				continue
			}
			if res.ResumedBytes > 0 {
				fmt.Fprintf(stdout, "resumed at %.1f MB of %.1f MB (the device kept what arrived before)\n", float64(res.ResumedBytes)/1e6, float64(res.Bytes)/1e6)
			}
			fmt.Fprintf(stdout, "sent %s (%s) to %s over %s in %.0f ms%s, SHA-256 %s confirmed\n", esc(res.Name), humanSize(res.Bytes), esc(res.Peer), esc(res.Path), res.DurationMS, rate(res), esc(res.SHA256[:min(16, len(res.SHA256))]))
		}
		if *asJSON {
			if len(results) == 1 {
				return writeJSON(stdout, results[0])
			}
			return writeJSON(stdout, results)
		}
		return nil
	}
	return c
}

// sendFile sends one file of a tree. A receiver whose kept partial turns
// out not to be this file's start removed it: the file goes again, whole.
func sendFile(cl *control.Client, stderr io.Writer, peer string, tf pairing.TreeFile, path string) (*control.SendResult, error) {
	for try := 0; ; try++ {
		f, err := os.Open(tf.Local)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("%s is not a regular file", tf.Local) // escaped by run
		}
		var body io.Reader = f
		stop := func() {}
		if colorOK(stderr) {
			body, stop = progress(stderr, f, fi.Size())
		}
		res, err := cl.Send(context.Background(), peer, "file", tf.Rel, fi.Size(), body, path)
		stop()
		f.Close()
		if control.ReasonOf(err) == control.ReasonResumeMismatch && try == 0 {
			continue
		}
		return res, err
	}
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

// rate is " (N Mbit/s)" for a transfer large and long enough to measure,
// of the bytes that moved (not those a resumed transfer found there).
func rate(res *control.SendResult) string {
	ms, moved := res.DurationMS-res.ConnectMS, res.Bytes-res.ResumedBytes
	if moved < minRateBytes || ms < minRateMS {
		return ""
	}
	return fmt.Sprintf(" (%.0f Mbit/s)", float64(moved)*8/1e6/(ms/1000))
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
