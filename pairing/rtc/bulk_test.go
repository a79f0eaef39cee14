package rtc

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// sealer is the page's side of a transfer: its key from the grant.
type sealer struct {
	g   bulkGrant
	key []byte
}

func pageOf(t testing.TB, g bulkGrant) sealer {
	key, err := base64.RawURLEncoding.DecodeString(g.Key)
	if err != nil || len(key) != chacha20poly1305.KeySize {
		t.Fatalf("grant key %q: %v", g.Key, err)
	}
	return sealer{g, key}
}

func (s sealer) seal(label string, i uint64, p []byte) []byte {
	a, _ := chacha20poly1305.New(s.key)
	return a.Seal(nil, BulkNonce(label, i), p, []byte(BulkAAD+s.g.ID))
}

func (s sealer) open(label string, i uint64, c []byte) ([]byte, error) {
	a, _ := chacha20poly1305.New(s.key)
	return a.Open(nil, BulkNonce(label, i), c, []byte(BulkAAD+s.g.ID))
}

func do(b *Bulk, method, path string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	b.ServeHTTP(w, r)
	return w
}

func reason(w *httptest.ResponseRecorder) string {
	if w.Code < 300 {
		return ""
	}
	s := w.Body.String()
	_, after, _ := strings.Cut(s, `"reason":"`)
	r, _, _ := strings.Cut(after, `"`)
	return r
}

// An upload takes the chunks sealed with its key, in order, once each:
// a replayed, reordered, altered, foreign-key or oversized chunk is
// refused and nothing of it is delivered.
func TestBulkUpload(t *testing.T) {
	b := NewBulk(slog.New(slog.DiscardHandler))
	var got bytes.Buffer
	x := b.open(func(p []byte) error { got.Write(p); return nil })
	pg := pageOf(t, x.grant)
	url := func(i int) string { return fmt.Sprintf("/p/bulk/%s/%d", x.id, i) }
	chunk := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 1000) }

	if w := do(b, "POST", url(0), pg.seal("up", 0, chunk(0))); w.Code != http.StatusNoContent {
		t.Fatalf("chunk 0: %d %s", w.Code, w.Body)
	}
	other := sealer{x.grant, make([]byte, 32)}
	altered := pg.seal("up", 1, chunk(1))
	altered[10] ^= 1
	tooBig := pg.seal("up", 1, make([]byte, BulkChunk+1))
	for _, c := range []struct {
		name, path string
		body       []byte
		status     int
		reason     string
	}{
		{"replayed", url(0), pg.seal("up", 0, chunk(0)), http.StatusConflict, "replayed"},
		{"reordered", url(2), pg.seal("up", 2, chunk(2)), http.StatusConflict, "out_of_order"},
		{"chunk 2's body under index 1", url(1), pg.seal("up", 2, chunk(2)), http.StatusForbidden, "bad_seal"},
		{"altered", url(1), altered, http.StatusForbidden, "bad_seal"},
		{"another key", url(1), other.seal("up", 1, chunk(1)), http.StatusForbidden, "bad_seal"},
		{"a download's nonce", url(1), pg.seal("dn", 1, chunk(1)), http.StatusForbidden, "bad_seal"},
		{"too big", url(1), tooBig, http.StatusRequestEntityTooLarge, "too_big"},
		{"unknown id", "/p/bulk/AAAAAAAAAAAAAAAAAAAAAA/1", pg.seal("up", 1, chunk(1)), http.StatusNotFound, "unknown"},
		{"no index", "/p/bulk/" + x.id + "/", nil, http.StatusNotFound, "unknown"},
		{"a GET of an upload", url(1), nil, http.StatusNotFound, "unknown"},
	} {
		method := "POST"
		if strings.HasPrefix(c.name, "a GET") {
			method = "GET"
		}
		if w := do(b, method, c.path, c.body); w.Code != c.status || reason(w) != c.reason {
			t.Errorf("%s: %d %s, want %d %s", c.name, w.Code, w.Body, c.status, c.reason)
		}
	}
	if w := do(b, "POST", url(1), pg.seal("up", 1, chunk(1))); w.Code != http.StatusNoContent {
		t.Fatalf("chunk 1: %d %s", w.Code, w.Body)
	}
	if want := append(chunk(0), chunk(1)...); !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("delivered %d bytes, want chunks 0 and 1 only (%d)", got.Len(), len(want))
	}
	// The receiver's refusal is the answer; the chunk does not count.
	b2 := NewBulk(slog.New(slog.DiscardHandler))
	y := b2.open(func([]byte) error { return errors.New("inbox full") })
	if w := do(b2, "POST", fmt.Sprintf("/p/bulk/%s/0", y.id), pageOf(t, y.grant).seal("up", 0, chunk(0))); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "inbox full") {
		t.Errorf("refused by the receiver: %d %s", w.Code, w.Body)
	}
	b.close(x)
	if w := do(b, "POST", url(2), pg.seal("up", 2, chunk(2))); w.Code != http.StatusNotFound {
		t.Errorf("after close: %d", w.Code)
	}
}

// A download gives each chunk once it is asked for with a proof of the
// key, in order; the last one again if asked again; nothing without the
// proof.
func TestBulkDownload(t *testing.T) {
	b := NewBulk(slog.New(slog.DiscardHandler))
	x := b.open(nil)
	pg := pageOf(t, x.grant)
	file := make([]byte, 2*BulkChunk+123)
	rand.Read(file)
	h := sha256.New()
	x.src = bulkSource{r: bytes.NewReader(file), left: int64(len(file)), h: h}
	close(x.ready)
	url := func(i uint64) string { return fmt.Sprintf("/p/bulk/%s/%d", x.id, i) }
	proof := func(s sealer, i uint64) string {
		return base64.RawURLEncoding.EncodeToString(s.seal("rq", i, nil))
	}
	for _, c := range []struct {
		name string
		hdr  []string
	}{
		{"no proof", nil},
		{"another key's proof", []string{BulkProofHeader, proof(sealer{x.grant, make([]byte, 32)}, 0)}},
		{"chunk 1's proof", []string{BulkProofHeader, proof(pg, 1)}},
		{"junk", []string{BulkProofHeader, "!!"}},
	} {
		if w := do(b, "GET", url(0), nil, c.hdr...); w.Code != http.StatusForbidden || reason(w) != "proof" {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
		}
	}
	if w := do(b, "GET", url(1), nil, BulkProofHeader, proof(pg, 1)); reason(w) != "out_of_order" {
		t.Errorf("chunk 1 first: %d %s", w.Code, w.Body)
	}
	var got []byte
	for i := uint64(0); i < 3; i++ {
		w := do(b, "GET", url(i), nil, BulkProofHeader, proof(pg, i))
		p, err := pg.open("dn", i, w.Body.Bytes())
		if w.Code != 200 || err != nil {
			t.Fatalf("chunk %d: %d %v", i, w.Code, err)
		}
		if i == 1 { // its answer lost: asked again
			w := do(b, "GET", url(1), nil, BulkProofHeader, proof(pg, 1))
			if again, err := pg.open("dn", 1, w.Body.Bytes()); err != nil || !bytes.Equal(again, p) {
				t.Fatalf("chunk 1 again: %d %v", w.Code, err)
			}
			if w := do(b, "GET", url(0), nil, BulkProofHeader, proof(pg, 0)); reason(w) != "replayed" {
				t.Errorf("chunk 0 again after 1: %d %s", w.Code, w.Body)
			}
		}
		got = append(got, p...)
	}
	select {
	case <-x.done:
	default:
		t.Fatal("not done after the last chunk")
	}
	if !bytes.Equal(got, file) || !bytes.Equal(h.Sum(nil), sum(file)) {
		t.Fatal("the chunks are not the file, or the sender's hash is not the file's")
	}
	if w := do(b, "GET", url(3), nil, BulkProofHeader, proof(pg, 3)); reason(w) != "out_of_order" {
		t.Errorf("past the end: %d %s", w.Code, w.Body)
	}
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// A download whose sender has not started answers within the wait, and
// the transfers a stranger could make a daemon hold are capped.
func TestBulkBounds(t *testing.T) {
	b := NewBulk(slog.New(slog.DiscardHandler))
	var open []*bulkXfer
	for i := 0; i < maxBulk+5; i++ {
		if x := b.open(nil); x != nil {
			open = append(open, x)
		}
	}
	if len(open) != maxBulk || b.Open() != maxBulk {
		t.Fatalf("%d transfers open, cap %d", len(open), maxBulk)
	}
	b.close(open[0])
	if b.open(nil) == nil {
		t.Fatal("no room after a close")
	}
}

// FuzzBulkRequest: whatever a stranger sends to /p/bulk/ (path, method,
// proof, body), nothing that was not sealed with the key is delivered
// or served, and nothing panics.
func FuzzBulkRequest(f *testing.F) {
	f.Add("POST", "0", "", []byte("junk"))
	f.Add("GET", "0", "AAAA", []byte{})
	f.Add("GET", "18446744073709551615", "", []byte{})
	f.Add("POST", "-1", "", []byte{})
	f.Fuzz(func(t *testing.T, method, index, proof string, body []byte) {
		b := NewBulk(slog.New(slog.DiscardHandler))
		delivered := false
		up := b.open(func([]byte) error { delivered = true; return nil })
		down := b.open(nil)
		down.src = bulkSource{r: bytes.NewReader(make([]byte, 10)), left: 10, h: sha256.New()}
		close(down.ready)
		for _, x := range []*bulkXfer{up, down} {
			r := httptest.NewRequest("GET", "/", io.NopCloser(bytes.NewReader(body)))
			r.Method = method
			r.URL.Path = "/p/bulk/" + x.id + "/" + index
			r.Header.Set(BulkProofHeader, proof)
			w := httptest.NewRecorder()
			b.ServeHTTP(w, r)
			if w.Code < 300 {
				t.Fatalf("%s %s: %d without the key", method, r.URL.Path, w.Code)
			}
		}
		if delivered {
			t.Fatal("delivered a chunk not sealed with the key")
		}
	})
}

// The page asks for a download's first chunk as soon as it answered the
// offer, maybe before the sender read that answer (or while it hashes a
// resume's prefix): that request waits for the file's bytes, and hears
// that the transfer is gone if it closes meanwhile. (From the tamper
// tests: "not_ready" failed a page's download now and then.)
func TestBulkDownloadWaits(t *testing.T) {
	b := NewBulk(slog.New(slog.DiscardHandler))
	for _, closeIt := range []bool{false, true} {
		x := b.open(nil)
		pg := pageOf(t, x.grant)
		first := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			first <- do(b, "GET", fmt.Sprintf("/p/bulk/%s/0", x.id), nil, BulkProofHeader, base64.RawURLEncoding.EncodeToString(pg.seal("rq", 0, nil)))
		}()
		select {
		case w := <-first:
			t.Fatalf("answered %d %s before the file's bytes were there", w.Code, w.Body)
		case <-time.After(300 * time.Millisecond):
		}
		if closeIt {
			b.close(x)
			b.close(x) // twice is safe
			if w := <-first; w.Code != http.StatusNotFound {
				t.Fatalf("waiting for a transfer that closed: %d %s", w.Code, w.Body)
			}
			continue
		}
		x.src = bulkSource{r: bytes.NewReader([]byte("hello")), left: 5, h: sha256.New()}
		close(x.ready)
		w := <-first
		if p, err := pg.open("dn", 0, w.Body.Bytes()); err != nil || string(p) != "hello" {
			t.Fatalf("chunk 0 once there: %d %v", w.Code, err)
		}
	}
}
