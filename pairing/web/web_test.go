package web

import (
	"io/fs"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The page references nothing outside the daemon that serves it: no
// scheme-qualified or protocol-relative URL, scripts only from /p/.
func TestNothingFromElsewhere(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]`)
	fs.WalkDir(assets, ".", func(path string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return nil
		}
		b, _ := assets.ReadFile(path)
		if strings.HasSuffix(path, ".js") {
			b = blockComment.ReplaceAll(b, nil) // comments may say anything
		}
		for _, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "// ") // comments may say anything
			if t := strings.TrimSpace(code); strings.HasPrefix(t, "*") || strings.HasPrefix(t, "/*") {
				continue // a block comment's line
			}
			if m := external.FindString(code); m != "" {
				t.Errorf("%s refers to %q: %s", path, m, line)
			}
		}
		return nil
	})
	// Every module the scripts import is served from /p/.
	for _, imp := range regexp.MustCompile(`(?m)^import .* from ["']([^"']+)["']`).FindAllStringSubmatch(mustRead(t, "app.js")+mustRead(t, "storage.js")+mustRead(t, "transfer.js")+mustRead(t, "worker.js")+mustRead(t, "sodium.js")+mustRead(t, "noble/sha2.js")+mustRead(t, "noble/utils.js")+mustRead(t, "noble/ciphers/chacha.js")+mustRead(t, "noble/ciphers/_arx.js")+mustRead(t, "noble/ciphers/_poly1305.js"), -1) {
		if !strings.HasPrefix(imp[1], "./") {
			t.Errorf("import %q is not a file served beside it", imp[1])
		}
	}
	for _, src := range regexp.MustCompile(`src="([^"]+)"`).FindAllStringSubmatch(mustRead(t, "index.html"), -1) {
		if !strings.HasPrefix(src[1], "/p/") {
			t.Errorf("script %q not from the daemon", src[1])
		}
	}
}

var blockComment = regexp.MustCompile(`(?s)/\*.*?\*/`)

func TestServes(t *testing.T) {
	h := Handler()
	for path, ctype := range map[string]string{"/p": "text/html", "/p/app.css": "text/css", "/p/app.js": "text/javascript", "/p/storage.js": "text/javascript", "/p/transfer.js": "text/javascript", "/p/worker.js": "text/javascript", "/p/noble/sha2.js": "text/javascript",
		"/p/noble/hmac.js": "text/javascript", "/p/noble/utils.js": "text/javascript", "/p/noble/ciphers/chacha.js": "text/javascript", "/p/sodium.js": "text/javascript", "/p/sodium/libsodium-sumo.js": "text/javascript", "/favicon.ico": "image/svg+xml"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %v", path, w.Code, w.Header())
		}
	}
}

func mustRead(t *testing.T, name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
