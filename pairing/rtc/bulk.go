package rtc

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The page's bulk path: a file's bytes between a page and its daemon go
// over HTTP on the page's own server instead of the data channel, which
// a browser moves at a fraction of what it moves over HTTP. Every chunk
// is sealed with ChaCha20-Poly1305 under a key of its own transfer, which
// the daemon makes and gives the page over the data channel (DTLS, and
// the page's certificate is the paired one): nothing crosses the LAN in
// the clear, and nothing that was not sealed with the key is taken. The
// control messages (offer, ready, end and its SHA-256 check) stay on the
// data channel, so the whole file's SHA-256 is still confirmed end to end.
//
//	page → {"t":"file",…,"bulk_ok":true}
//	     ← {"t":"ready",…,"bulk":{"id","key","chunk"}}
//	POST /p/bulk/<id>/<i>   body: seal("up", i, the file's bytes
//	     offset+i·chunk … +chunk)                       ← 204
//	page → {"t":"end","sha256"}                          ← {"t":"ack"}
//
//	daemon → {"t":"file",…,"bulk":{"id","key","chunk"}}
//	     ← {"t":"ready",…,"bulk_ok":true}
//	GET /p/bulk/<id>/<i>   X-Pairing-Proof: base64url(seal("rq", i, ""))
//	     ← seal("dn", i, the bytes offset+i·chunk …)
//	daemon → {"t":"end","sha256"} once the last chunk went out ← ack
//
// seal(label, i, p) is ChaCha20-Poly1305 with the transfer's key, the
// nonce label (4 bytes, zero-padded) ‖ uint64 big-endian i, and the
// additional data BulkAAD ‖ id. Chunks go in order, one request at a
// time: a chunk whose index is not the next one (replayed or reordered)
// is refused before its body is read, one that does not open (altered,
// or sealed under another key) is refused and nothing of it is written,
// and a GET without a proof of the key gets nothing. A transfer is
// reachable only while its data channel exchange runs. A peer that does
// not offer (or accept) the bulk path gets the data channel, as before.
const (
	// BulkChunk is the plaintext of one request: large enough that a
	// request's overhead does not count, small enough to move within
	// bulkRequestTimeout at the
	// slowest rate a transfer may have (1 MiB in 30 s, see Progress).
	BulkChunk = 2 << 20
	// BulkAAD starts every chunk's additional data.
	BulkAAD = "pairing bulk v1 "
	// BulkProofHeader carries a GET's proof of the key.
	BulkProofHeader = "X-Pairing-Proof"
	// maxBulk caps the transfers open at once (each is one page's file
	// in one direction; a page has one of each at most).
	maxBulk = 64
	// bulkRequestTimeout bounds one chunk's request: its body read, or
	// its answer written.
	bulkRequestTimeout = 60 * time.Second
	// bulkTurnWait bounds the wait of a request for the one before it.
	bulkTurnWait = 5 * time.Second
)

// Errors of the bulk path, as the HTTP answers say them.
var (
	ErrBulkUnknown  = errors.New("no such transfer")
	ErrBulkBusy     = errors.New("a chunk of this transfer is already on its way")
	ErrBulkNotReady = errors.New("the transfer has not started")
	ErrBulkReplayed = errors.New("chunk already received (replayed)")
	ErrBulkOrder    = errors.New("chunk out of order")
	ErrBulkSeal     = errors.New("chunk not sealed with this transfer's key (altered on the way?)")
	ErrBulkProof    = errors.New("no proof of this transfer's key")
	ErrBulkTooBig   = errors.New("chunk larger than the transfer's chunk size")
)

// bulkGrant is what a peer learns of a transfer on the data channel.
type bulkGrant struct {
	ID    string `json:"id"`
	Key   string `json:"key"`
	Chunk int    `json:"chunk"`
}

// Bulk is the daemon's open bulk transfers, served at /p/bulk/.
type Bulk struct {
	log  *slog.Logger
	mu   sync.Mutex
	by   map[string]*bulkXfer
	pool sync.Pool // sealed chunks' buffers
}

// NewBulk makes an empty set of bulk transfers.
func NewBulk(log *slog.Logger) *Bulk {
	b := &Bulk{log: log, by: map[string]*bulkXfer{}}
	b.pool.New = func() any { s := make([]byte, 0, BulkChunk+chacha20poly1305.Overhead); return &s }
	return b
}

// bulkXfer is one file's bulk transfer, one direction.
type bulkXfer struct {
	id    string
	aead  cipher.AEAD
	grant bulkGrant
	up    bool

	turn chan struct{} // held by the one request at a time
	next uint64        // the index of the next chunk
	// up: takes a chunk's plaintext (the receiver's file).
	deliver func([]byte) error
	// down: the file's bytes, once ready is closed (the sender read the
	// page's ready, which its first GET may overtake).
	ready   chan struct{}
	gone    chan struct{} // closed when the transfer is
	src     bulkSource
	done    chan struct{} // down: the last chunk went out
	doneSet bool
}

// bulkSource is a download's bytes from the offset on, hashed as they go.
type bulkSource struct {
	r      io.Reader
	left   int64
	h      hash.Hash
	served func(int64) // counts the bytes that went out
	last   []byte      // chunk next-1 as sealed (sent again if asked)
}

// open registers a new transfer: an upload when deliver is set (it takes
// the chunks' bytes), else a download. nil when too many are open.
func (b *Bulk) open(deliver func([]byte) error) *bulkXfer {
	var key [chacha20poly1305.KeySize]byte
	var id [16]byte
	rand.Read(key[:])
	rand.Read(id[:])
	aead, _ := chacha20poly1305.New(key[:])
	x := &bulkXfer{id: base64.RawURLEncoding.EncodeToString(id[:]), aead: aead, up: deliver != nil, deliver: deliver,
		done: make(chan struct{}), turn: make(chan struct{}, 1), ready: make(chan struct{}), gone: make(chan struct{})}
	x.grant = bulkGrant{ID: x.id, Key: base64.RawURLEncoding.EncodeToString(key[:]), Chunk: BulkChunk}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.by) >= maxBulk {
		return nil
	}
	b.by[x.id] = x
	return x
}

// close forgets x: its requests get ErrBulkUnknown from now on.
func (b *Bulk) close(x *bulkXfer) {
	if x == nil {
		return
	}
	b.mu.Lock()
	_, ok := b.by[x.id]
	delete(b.by, x.id)
	b.mu.Unlock()
	if ok {
		close(x.gone)
	}
}

func (b *Bulk) get(id string) (*bulkXfer, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.by[id]
	return x, ok
}

// Open counts the transfers open (for tests).
func (b *Bulk) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.by)
}

// BulkNonce is chunk i's nonce with label ("up", "dn" or "rq").
func BulkNonce(label string, i uint64) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	copy(n[:4], label)
	binary.BigEndian.PutUint64(n[4:], i)
	return n
}

func (x *bulkXfer) aad() []byte { return []byte(BulkAAD + x.id) }

// ServeHTTP serves POST and GET /p/bulk/<id>/<i>.
func (b *Bulk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, reason string, err error) {
		b.log.Info("bulk: request refused", "from", r.RemoteAddr, "method", r.Method, "reason", reason, "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}{err.Error(), reason})
	}
	rest, _ := strings.CutPrefix(r.URL.Path, "/p/bulk/")
	idStr, iStr, _ := strings.Cut(rest, "/")
	i, err := strconv.ParseUint(iStr, 10, 63)
	x, ok := b.get(idStr)
	if err != nil || !ok || x.up != (r.Method == http.MethodPost) {
		fail(http.StatusNotFound, "unknown", ErrBulkUnknown)
		return
	}
	if !x.up {
		proof, err := base64.RawURLEncoding.DecodeString(r.Header.Get(BulkProofHeader))
		if err == nil {
			_, err = x.aead.Open(nil, BulkNonce("rq", i), proof, x.aad())
		}
		if err != nil {
			fail(http.StatusForbidden, "proof", ErrBulkProof)
			return
		}
		// The page asks for the first chunk as soon as it answered the
		// offer: before the sender read that answer, or while it hashes
		// the part of the file a resume skips.
		select {
		case <-x.ready:
		case <-x.gone:
			fail(http.StatusNotFound, "unknown", ErrBulkUnknown)
			return
		case <-r.Context().Done():
			return
		case <-time.After(bulkRequestTimeout):
			fail(http.StatusConflict, "not_ready", ErrBulkNotReady)
			return
		}
	}
	// The page asks for a chunk once the one before arrived, which may be
	// a moment before that request's handler is done.
	select {
	case x.turn <- struct{}{}:
	case <-time.After(bulkTurnWait):
		fail(http.StatusConflict, "busy", ErrBulkBusy)
		return
	}
	defer func() { <-x.turn }()
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(bulkRequestTimeout))
	rc.SetWriteDeadline(time.Now().Add(bulkRequestTimeout))
	if x.up {
		status, reason, err := b.take(x, i, r.Body)
		if err != nil {
			fail(status, reason, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	sealed, status, reason, err := b.give(x, i)
	if err != nil {
		fail(status, reason, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(sealed)))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(sealed)
}

// take reads, opens and delivers upload chunk i (x's turn held).
func (b *Bulk) take(x *bulkXfer, i uint64, body io.Reader) (int, string, error) {
	switch {
	case i < x.next:
		return http.StatusConflict, "replayed", ErrBulkReplayed
	case i > x.next:
		return http.StatusConflict, "out_of_order", ErrBulkOrder
	}
	bufp := b.pool.Get().(*[]byte)
	defer b.pool.Put(bufp)
	buf := (*bufp)[:cap(*bufp)]
	n, err := io.ReadFull(body, buf)
	switch {
	case err == nil:
		var one [1]byte
		if m, _ := body.Read(one[:]); m > 0 {
			return http.StatusRequestEntityTooLarge, "too_big", ErrBulkTooBig
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
	default:
		return http.StatusBadRequest, "bad_request", fmt.Errorf("reading the chunk: %w", err)
	}
	plain, err := x.aead.Open(buf[:0], BulkNonce("up", i), buf[:n], x.aad())
	if err != nil {
		return http.StatusForbidden, "bad_seal", ErrBulkSeal
	}
	if err := x.deliver(plain); err != nil {
		return http.StatusConflict, "refused", err
	}
	x.next++
	return 0, "", nil
}

// give reads and seals download chunk i (x's turn held); chunk next-1 again
// when the page asks for it again (its answer was lost).
func (b *Bulk) give(x *bulkXfer, i uint64) ([]byte, int, string, error) {
	if i+1 == x.next && x.src.last != nil {
		return x.src.last, 0, "", nil
	}
	switch {
	case i < x.next:
		return nil, http.StatusConflict, "replayed", ErrBulkReplayed
	case i > x.next || x.src.left == 0:
		return nil, http.StatusConflict, "out_of_order", ErrBulkOrder
	}
	n := min(x.src.left, BulkChunk)
	if x.src.last == nil {
		x.src.last = make([]byte, 0, BulkChunk+chacha20poly1305.Overhead)
	}
	plain := x.src.last[:n]
	if _, err := io.ReadFull(x.src.r, plain); err != nil {
		return nil, http.StatusInternalServerError, "internal", fmt.Errorf("reading the file: %w", err)
	}
	x.src.h.Write(plain)
	x.src.last = x.aead.Seal(plain[:0], BulkNonce("dn", i), plain, x.aad())
	x.next++
	x.src.left -= n
	if x.src.served != nil {
		x.src.served(n)
	}
	if x.src.left == 0 && !x.doneSet {
		x.doneSet = true
		close(x.done)
	}
	return x.src.last, 0, "", nil
}
