package main

import (
	"fmt"
	"strings"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/lanpairing/pairing/internal/atomicfile"
)

// qrLevel: medium error correction survives a smudged screen; the
// terminal falls back to low when medium does not fit.
const qrLevel = qrcode.Medium

// The terminal form of the pairing QR code (the payload URL is
// pairing.Payload's): half blocks, two modules a character cell.

// A terminal QR code fits 80×24 with at least termTextLines line under it
// (the code and the time left): with an IPv4 host it takes 21 rows, with
// a long IPv6 one 23. The quiet zone is quietModules (scanners read 2
// well; the standard's 4 would cost two rows).
const (
	termRows      = 24
	termCols      = 80
	termTextLines = 1
	quietModules  = 2
)

// qrModules is url's QR code as modules (true: dark), with the quiet
// zone: at qrLevel when it fits a terminal with three lines to spare,
// else at the low level.
func qrModules(url string) ([][]bool, error) {
	var bm [][]bool
	// Medium when it leaves room for three lines of text, else low.
	for _, try := range []struct {
		lvl   qrcode.RecoveryLevel
		spare int
	}{{qrLevel, 3}, {qrcode.Low, termTextLines}} {
		q, err := qrcode.New(url, try.lvl)
		if err != nil {
			return nil, fmt.Errorf("qr code: %w", err)
		}
		q.DisableBorder = true
		bm = withQuiet(q.Bitmap(), quietModules)
		if (len(bm)+1)/2+try.spare <= termRows && len(bm) <= termCols {
			break
		}
	}
	return bm, nil
}

func withQuiet(bm [][]bool, n int) [][]bool {
	size := len(bm) + 2*n
	out := make([][]bool, size)
	for y := range out {
		out[y] = make([]bool, size)
		if y >= n && y < n+len(bm) {
			copy(out[y][n:], bm[y-n])
		}
	}
	return out
}

// qrText renders url as a QR code of half-block characters, two modules
// per character cell, small enough for an 80×24 terminal with
// termTextLines lines under it. With color it paints explicit black on
// white, so it scans on dark and light terminals alike; without, it
// leaves the background as it is (light blocks on a dark terminal).
func qrText(url string, color bool) (string, error) {
	bm, err := qrModules(url)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top, bottom := bm[y][x], y+1 < len(bm) && bm[y+1][x]
			switch {
			case color:
				// ▀ draws the top half in the foreground colour.
				fmt.Fprintf(&b, "\x1b[%d;%dm▀", fg(top), fg(bottom)+10)
			case top && bottom:
				b.WriteString(" ")
			case top:
				b.WriteString("▄")
			case bottom:
				b.WriteString("▀")
			default:
				b.WriteString("█")
			}
		}
		if color {
			b.WriteString("\x1b[0m")
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

func fg(dark bool) int {
	if dark {
		return 30 // black
	}
	return 97 // bright white
}

// writeQRPNG writes url as a PNG QR code of size pixels.
func writeQRPNG(url, path string, size int) error {
	q, err := qrcode.New(url, qrLevel)
	if err != nil {
		return fmt.Errorf("qr code: %w", err)
	}
	png, err := q.PNG(size)
	if err != nil {
		return fmt.Errorf("qr code: %w", err)
	}
	// The code carries the secret: mode 0600, written to a new file and
	// renamed over path, so a symlink there is replaced, never followed.
	if err := atomicfile.Write(path, png); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
