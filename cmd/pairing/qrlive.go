package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/lanpairing/pairing/internal/control"
)

// codePeriod is how often a link window's 6-digit code changes (TOTP).
const codePeriod = 30 * time.Second

// qrTerminal shows a window on a terminal cols wide: the QR code with its
// text beside it, the URL under it when it fits, and a last line with the
// time left. For a link, that line has the code and the seconds until it
// changes, live, until Ctrl-C or the window closes; then the line says
// which, so nothing live-looking stays on the screen.
func qrTerminal(out io.Writer, cl *control.Client, w *control.Window, url string, link bool, host netip.Addr, cols, rows int) error {
	color := colorOK(out)
	text, urlShown, err := qrLayout(url, color, cols, windowText(*w, link, urlNowhere))
	if err != nil {
		return err
	}
	closes := "closes in " + left(w.SecretExpires, time.Now()) + ", or once a device paired"
	urlRows := (utf8.RuneCountInString(esc(url)) + cols - 1) / cols
	switch {
	case urlShown: // say so beside the code
		text, _, _ = qrLayout(url, color, cols, windowText(*w, link, urlBelow))
	case !link && urlRows+strings.Count(text, "\n")+1 <= rows:
		// Too wide for a line, but there are the rows for it above the
		// code (wrapped by the terminal: 2 rows of 80 for an IPv4 URL,
		// the code's 21 and the prompt's fill 24), when the time left
		// goes beside the code.
		side := append(windowText(*w, link, urlAbove), "", "C"+closes[1:]+".")
		text, _, _ = qrLayout(url, color, cols, side)
		io.WriteString(out, esc(url)+"\n"+text)
		return nil
	}
	io.WriteString(out, text)
	if !link {
		fmt.Fprintln(out, closes)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	step := time.Now().Truncate(codePeriod)
	for {
		now := time.Now()
		if now.Truncate(codePeriod) != step {
			step = now.Truncate(codePeriod)
			cur, err := cl.CurrentWindow(ctx, true, host)
			if control.ReasonOf(err) == control.ReasonWindowClosed {
				fmt.Fprintf(out, "\r\x1b[Kthe pairing window closed (a device paired, or it expired): the code above no longer works\n")
				return nil
			}
			if err == nil {
				w = cur
			} else if !errors.Is(err, context.Canceled) {
				fmt.Fprintf(out, "\r\x1b[K")
				return daemonError(err)
			}
		}
		if !now.Before(w.SecretExpires) {
			fmt.Fprintf(out, "\r\x1b[Kthe pairing window closed: the code above no longer works\n")
			return nil
		}
		next := step.Add(codePeriod).Sub(now)
		fmt.Fprintf(out, "\r\x1b[Kcode %s · next in %2ds · closes in %s · Ctrl-C to stop", esc(w.Code), int(next.Seconds()+0.999), left(w.SecretExpires, now))
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "\r\x1b[Kstopped showing the code; the window stays open for %s ('pairing qr --link' shows it again)\n", left(w.SecretExpires, time.Now()))
			return nil
		case <-t.C:
		}
	}
}

// left is the time from now to t as m:ss.
func left(t, now time.Time) string {
	d := max(t.Sub(now), 0)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}
