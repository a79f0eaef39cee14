package main

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/lanpairing/pairing/internal/control"
)

// A QR code on a terminal must fit 80×24 with its text, or its top (the
// finder patterns) scrolls off and it does not scan. So the text goes
// beside the code (21 rows of 41 columns for an IPv4 URL leave 37
// columns), the URL goes under it only when it fits on one line of the
// terminal (a wrapped URL cannot be copied whole), and one line under it
// is left for the time left and one for the shell's prompt.
const (
	qrGap   = 2  // columns between the code and its text
	minSide = 24 // narrower than this, the text goes under the code
)

// termWidth is f's terminal width, 0 when f is not a terminal.
func termWidth(f *os.File) int {
	cols, _ := termSize(f)
	return cols
}

// termSize is f's terminal size in columns and rows, 0 when f is not a
// terminal.
func termSize(f *os.File) (cols, rows int) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 0, 0
	}
	return int(ws.Col), int(ws.Row)
}

// qrLayout is the QR code of url with side beside it (wrapped to the
// room there is), and url on its own line under it when it fits cols.
// It returns the text (ending in a newline) and whether url is in it.
func qrLayout(url string, color bool, cols int, side []string) (string, bool, error) {
	bm, err := qrModules(url)
	if err != nil {
		return "", false, err
	}
	code, err := qrText(url, color)
	if err != nil {
		return "", false, err
	}
	rows := strings.Split(strings.TrimSuffix(code, "\n"), "\n")
	qrW := len(bm[0]) // a cell is one module wide
	urlFits := utf8.RuneCountInString(url) <= cols
	var b strings.Builder
	room := cols - qrW - qrGap
	if room < minSide {
		// No room beside: the code, then the text under it.
		b.WriteString(code)
		for _, l := range wrap(side, cols) {
			b.WriteString(l + "\n")
		}
	} else {
		text := wrap(side, room)
		for i, r := range rows {
			b.WriteString(r)
			if i < len(text) && text[i] != "" {
				b.WriteString(strings.Repeat(" ", qrGap) + text[i])
			}
			b.WriteString("\n")
		}
		for _, l := range text[min(len(rows), len(text)):] {
			b.WriteString(strings.Repeat(" ", qrW+qrGap) + l + "\n")
		}
	}
	if urlFits {
		b.WriteString(esc(url) + "\n")
	}
	return b.String(), urlFits, nil
}

// wrap breaks paragraphs into lines of at most width columns, at spaces;
// "" is an empty line.
func wrap(paras []string, width int) []string {
	var out []string
	for _, p := range paras {
		if p == "" {
			out = append(out, "")
			continue
		}
		line := ""
		for _, w := range strings.Fields(p) {
			switch {
			case line == "":
				line = w
			case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= width:
				line += " " + w
			default:
				out = append(out, line)
				line = w
			}
		}
		out = append(out, line)
	}
	return out
}

// Where a window's URL is on the terminal, for the text beside the code.
type urlPlace int

const (
	urlNowhere urlPlace = iota // too wide: the text says how to get it
	urlBelow                   // on its own line under the code
	urlAbove                   // printed above the code (serve --open)
)

// windowText is what goes beside a window's QR code: whose it is, what to
// do with it, where the URL is, and which network it is for.
func windowText(w control.Window, link bool, url urlPlace) []string {
	out := []string{esc(w.Name) + " (" + esc(w.ID) + ")", ""}
	if link {
		out = append(out, "Send the link below by chat; the receiver opens it and types the code shown here.")
	} else {
		out = append(out, "Scan it with your phone's camera, or run 'pairing join URL' on another computer.")
	}
	switch {
	case url == urlBelow && link:
		out = append(out, "The link is below.")
	case url == urlBelow:
		out = append(out, "The URL is below.")
	case url == urlAbove:
		out = append(out, "The URL is above the code.")
	case link:
		out = append(out, "The link is too wide to show here:", "pairing qr --link --json")
	default:
		out = append(out, "The URL is too wide to show here:", "pairing qr --json")
	}
	if len(w.Networks) > 1 {
		n := w.Networks[0]
		out = append(out, "", fmt.Sprintf("For devices on %s (%s).", esc(n.Interface), n.Address))
		for _, o := range w.Networks[1:] {
			out = append(out, fmt.Sprintf("On %s, run", esc(o.Interface)), fmt.Sprintf("pairing qr --address %s", o.Address))
		}
	}
	if w.PreviousClosed != "" {
		out = append(out, "", "The last window closed early: "+esc(w.PreviousClosed)+" (someone may have been guessing); this is a new one.")
	}
	return out
}
