package web

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
)

// iconSizes are the PNG icons the page offers: 180 px for the iOS Home
// Screen (apple-touch-icon), 192 and 512 px for the web app manifest.
var iconSizes = []int{180, 192, 512}

// manifest makes the page installable (Add to Home Screen), which also
// keeps its storage on iOS. No start_url: the installed page opens the
// address it was added from, whose fragment names the device.
const manifest = `{"name":"Pairing","short_name":"Pairing","display":"standalone",` +
	`"background_color":"#ffffff","theme_color":"#0b57d0","icons":[` +
	`{"src":"/p/icon-192.png","sizes":"192x192","type":"image/png"},` +
	`{"src":"/p/icon-512.png","sizes":"512x512","type":"image/png"}]}`

// iconPNG draws the favicon's picture (two linked devices on blue) at n×n
// pixels, the same shapes as the SVG in 64-unit coordinates.
func iconPNG(n int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	blue := color.NRGBA{0x0b, 0x57, 0xd0, 0xff}
	white := color.NRGBA{0xff, 0xff, 0xff, 0xff}
	// In the SVG's units: x, y, width, height, corner radius.
	type box struct{ x, y, w, h, r float64 }
	in := func(b box, x, y float64) bool {
		if x < b.x || y < b.y || x > b.x+b.w || y > b.y+b.h {
			return false
		}
		cx := min(max(x, b.x+b.r), b.x+b.w-b.r)
		cy := min(max(y, b.y+b.r), b.y+b.h-b.r)
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= b.r*b.r
	}
	// The iOS icon is square (iOS rounds it): the background fills it.
	bg := box{0, 0, 64, 64, 0}
	devices := []box{{10, 18, 20, 30, 4}, {34, 14, 20, 36, 4}}
	link := box{22, 31, 20, 4, 2}
	for py := 0; py < n; py++ {
		for px := 0; px < n; px++ {
			x, y := (float64(px)+.5)*64/float64(n), (float64(py)+.5)*64/float64(n)
			c := color.NRGBA{}
			if in(bg, x, y) {
				c = blue
			}
			for _, d := range devices {
				if in(d, x, y) {
					c = white
				}
			}
			if in(link, x, y) {
				c = blue
			}
			img.SetNRGBA(px, py, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img) // into memory: cannot fail
	return b.Bytes()
}
