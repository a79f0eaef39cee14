// Package web is the pairing page a phone opens from the QR code: HTML
// and JavaScript embedded in the binary, referencing nothing outside the
// daemon that serves it.
package web

import (
	"embed"
	"net/http"
)

//go:embed index.html app.js sha256.js
var assets embed.FS

// Handler serves the page at /p and its scripts at /p/app.js and
// /p/sha256.js.
func Handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(name, ctype string) http.HandlerFunc {
		b, err := assets.ReadFile(name)
		if err != nil {
			panic(err) // embedded: cannot happen
		}
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", ctype)
			h.Set("Cache-Control", "no-store")
			// Nothing from elsewhere: scripts, styles and connections only
			// to this daemon.
			h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			w.Write(b)
		}
	}
	mux.Handle("GET /p", serve("index.html", "text/html; charset=utf-8"))
	mux.Handle("GET /p/app.js", serve("app.js", "text/javascript; charset=utf-8"))
	mux.Handle("GET /p/sha256.js", serve("sha256.js", "text/javascript; charset=utf-8"))
	return mux
}
