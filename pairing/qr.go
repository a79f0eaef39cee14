package pairing

import (
	"fmt"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// qrLevel: medium error correction survives a smudged screen and keeps
// a pairing URL small enough for a terminal.
const qrLevel = qrcode.Medium

// QRText renders url as a QR code of half-block characters, two modules
// per character cell. With color it paints explicit black on white, so
// it scans on dark and light terminals alike; without, it leaves the
// background as it is (light blocks on a dark terminal).
func QRText(url string, color bool) (string, error) {
	q, err := qrcode.New(url, qrLevel)
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	if !color {
		return q.ToSmallString(false), nil
	}
	bm := q.Bitmap() // true = dark module, with the quiet zone
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top, bottom := bm[y][x], y+1 < len(bm) && bm[y+1][x]
			// ▀ draws the top half in the foreground colour.
			fmt.Fprintf(&b, "\x1b[%d;%dm▀", fg(top), fg(bottom)+10)
		}
		b.WriteString("\x1b[0m\n")
	}
	return b.String(), nil
}

func fg(dark bool) int {
	if dark {
		return 30 // black
	}
	return 97 // bright white
}

// WriteQRPNG writes url as a PNG QR code of size pixels.
func WriteQRPNG(url, path string, size int) error {
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
	if err := writeFileAtomic(path, png); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
