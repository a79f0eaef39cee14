package web

import (
	"bytes"
	"encoding/json"
	"image/png"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The page can be added to a Home Screen: a manifest whose icons are
// PNGs of their stated size, the iOS meta tags, and links that the CSP
// ('self' only) allows.
func TestInstallable(t *testing.T) {
	h := Handler()
	get := func(path string) ([]byte, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d", path, w.Code)
		}
		return w.Body.Bytes(), w.Header().Get("Content-Type")
	}
	b, ctype := get("/p/manifest.webmanifest")
	var m struct {
		Name, Display string
		Icons         []struct{ Src, Sizes, Type string }
	}
	if err := json.Unmarshal(b, &m); err != nil || ctype != "application/manifest+json" || m.Display != "standalone" || len(m.Icons) != 2 {
		t.Fatalf("manifest %s (%s): %v", b, ctype, err)
	}
	srcs := []string{"/p/icon-180.png"}
	for _, ic := range m.Icons {
		srcs = append(srcs, ic.Src)
	}
	for _, src := range srcs {
		b, ctype := get(src)
		img, err := png.Decode(bytes.NewReader(b))
		n := regexp.MustCompile(`\d+`).FindString(src)
		if err != nil || ctype != "image/png" || img.Bounds().Dx() != atoi(n) || img.Bounds().Dy() != atoi(n) {
			t.Errorf("%s: %v %s %v", src, err, ctype, img)
		}
	}
	page := mustRead(t, "index.html")
	for _, want := range []string{`name="apple-mobile-web-app-capable" content="yes"`, `rel="apple-touch-icon" href="/p/icon-180.png"`, `rel="manifest" href="/p/manifest.webmanifest"`, "Add to Home Screen"} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	// No inline script or style: the CSP would block them.
	if regexp.MustCompile(`<script>|<style|style="|\son[a-z]+="`).MatchString(page) {
		t.Errorf("index.html has inline code or style")
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
