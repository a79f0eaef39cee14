package lantest

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// DecodeModules reads a QR code from rows of dark (true) modules, with a
// real decoder (gozxing); a code that does not read fails t.
func DecodeModules(t testing.TB, rows [][]bool) string {
	t.Helper()
	text, err := Decode(rows)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// Decode reads a QR code from rows of dark (true) modules.
func Decode(rows [][]bool) (string, error) {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return "", errors.New("decode: no modules")
	}
	const scale = 6
	img := image.NewGray(image.Rect(0, 0, len(rows[0])*scale, len(rows)*scale))
	for y, row := range rows {
		for x, dark := range row {
			c := color.Gray{255}
			if dark {
				c = color.Gray{0}
			}
			for dy := range scale {
				for dx := range scale {
					img.SetGray(x*scale+dx, y*scale+dy, c)
				}
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", err
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		// gozxing's finder-pattern search misses about 1 code in 100 of
		// ours (0.4-1.2 % of 3,000 random pairing URLs, with the
		// standard's 4-module quiet zone too), so a test failed on the
		// odd random secret. zbar read every code it missed. The image
		// is a perfect one, so reading its modules where they are
		// (PURE_BARCODE) tells whether the code is whole: that read all
		// 3,000.
		var err2 error
		if res, err2 = qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}); err2 != nil {
			return "", fmt.Errorf("decode: %w (its modules where they are: %v)", err, err2)
		}
	}
	return res.GetText(), nil
}

// HalfBlockModules reads back the plain half-block form of a terminal QR
// code (light blocks on a dark terminal) into rows of modules.
func HalfBlockModules(lines []string) [][]bool {
	var rows [][]bool
	for _, line := range lines {
		var top, bottom []bool
		for _, r := range line {
			top, bottom = append(top, r == ' ' || r == '▄'), append(bottom, r == ' ' || r == '▀')
		}
		rows = append(rows, top, bottom)
	}
	return rows
}
