// Package web is the pairing page a phone opens from the QR code: HTML
// and JavaScript embedded in the binary, referencing nothing outside the
// daemon that serves it.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

//go:embed index.html app.css *.js noble/*.js noble/ciphers/*.js sodium/*.js
var assets embed.FS

// icon is the favicon: two linked devices.
const icon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#0b57d0"/>` +
	`<rect x="10" y="18" width="20" height="30" rx="4" fill="#fff"/><rect x="34" y="14" width="20" height="36" rx="4" fill="#fff"/>` +
	`<path d="M24 33h16" stroke="#0b57d0" stroke-width="4" stroke-linecap="round"/></svg>`

// Handler serves the page at /p, its style and scripts under /p/
// (app.css, its modules app.js, storage.js, transfer.js, worker.js and
// sodium.js, and the vendored crypto in /p/noble/ and /p/sodium/) and the icon at
// /favicon.ico, the web app manifest and its PNG icons (/p/icon-N.png).
// The security headers (CSP and others) are the Guard's,
// which the daemon puts in front of every plain-HTTP handler.
func Handler() http.Handler {
	mux := http.NewServeMux()
	// body is what a handler writes: computed at its first request, so
	// that an idle daemon holds no copy of a file or a drawn icon (the
	// embedded files stay in the binary's pages, unread until served).
	serve := func(ctype string, body func() []byte) http.HandlerFunc {
		body = sync.OnceValue(body)
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", ctype)
			h.Set("Cache-Control", "no-store")
			w.Write(body())
		}
	}
	file := func(name string) func() []byte {
		return func() []byte {
			b, err := assets.ReadFile(name)
			if err != nil {
				panic(err) // embedded: cannot happen
			}
			return b
		}
	}
	constant := func(s string) func() []byte { return func() []byte { return []byte(s) } }
	mux.Handle("GET /p", serve("text/html; charset=utf-8", file("index.html")))
	mux.Handle("GET /p/app.css", serve("text/css; charset=utf-8", file("app.css")))
	fs.WalkDir(assets, ".", func(name string, e fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(name, ".js") {
			mux.Handle("GET /p/"+name, serve("text/javascript; charset=utf-8", file(name)))
		}
		return err
	})
	mux.Handle("GET /favicon.ico", serve("image/svg+xml", constant(icon)))
	mux.Handle("GET /p/manifest.webmanifest", serve("application/manifest+json", constant(manifest)))
	for _, n := range iconSizes {
		mux.Handle("GET /p/icon-"+strconv.Itoa(n)+".png", serve("image/png", func() []byte { return iconPNG(n) }))
	}
	return mux
}
