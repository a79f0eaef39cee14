package session

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// Paths a file takes to a paired daemon (the transfer setting).
const (
	PathAuto   = "auto"   // TLS when it connects, else WebRTC
	PathTLS    = "tls"    // the direct path only
	PathWebRTC = "webrtc" // the data channel only
	// PathBulk: how a file went to a page on its bulk path (HTTP, every
	// chunk sealed; see rtc.Bulk). Not a setting: a page takes it when
	// it can.
	PathBulk = "bulk"
)

// transferIdle bounds a transfer's silence: a receiver waits this long
// for the next bytes before it gives up (and removes the partial file).
const transferIdle = 30 * time.Second

// copyBuffer is the receiver's read size: fewer, larger writes to the file.
const copyBuffer = 256 << 10

// Handler is the sessions' TLS endpoints on the pairing listener: WebRTC
// signalling (connect) and the direct transfer.
func (s *Sessions) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pairing.PathConnect, s.serveConnect)
	mux.HandleFunc("POST "+pairing.PathTransfer, s.direct.serve)
	return mux
}

func clientFingerprint(r *http.Request) (ident.Fingerprint, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ident.Fingerprint{}, false
	}
	return ident.Of(r.TLS.PeerCertificates[0].Raw), true
}

func (s *Sessions) serveConnect(w http.ResponseWriter, r *http.Request) {
	var req pairing.ConnectMessage
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	fp, ok := clientFingerprint(r)
	if err != nil || req.SDP == "" || !ok {
		pairing.WriteJSON(w, http.StatusBadRequest, pairing.ErrorResponse{Error: "want {\"sdp\": offer} and a client certificate", Reason: "bad_request"})
		return
	}
	answer, err := s.Connect(r.Context(), req.SDP, fp, pairing.RemoteIP(r))
	if err != nil {
		pairing.WriteJSON(w, http.StatusForbidden, pairing.ErrorResponse{Error: err.Error(), Reason: "refused"})
		return
	}
	pairing.WriteJSON(w, http.StatusOK, pairing.ConnectMessage{SDP: answer})
}

// direct is the direct TLS path for files between paired daemons.
type direct struct {
	id     *pairing.Identity
	store  *pairing.Store
	inbox  *inbox.Inbox
	files  *partials // shared with the data channels
	log    *slog.Logger
	recent directLog
}

// serve receives a file over the direct path: the client's certificate
// must be a paired device's (as for connect), the name and size pass the
// inbox's checks before a byte is read, and the file is kept only when it
// has the announced size and the SHA-256 both sides computed.
func (s *direct) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	src := pairing.RemoteIP(r)
	fail := func(status int, reason string, err error) {
		s.log.Warn("transfer: refused", "from", src, "reason", reason, "err", err)
		pairing.WriteJSON(w, status, pairing.ErrorResponse{Error: err.Error(), Reason: reason})
	}
	// The same log lines as the data channel's receiver.
	inboxFail := func(status int, msg string, err error) {
		s.log.Warn(msg, "from", src, "path", PathTLS, "err", err)
		pairing.WriteJSON(w, status, pairing.ErrorResponse{Error: err.Error(), Reason: "inbox"})
	}
	fp, ok := clientFingerprint(r)
	if !ok {
		fail(http.StatusForbidden, "refused", errors.New("a transfer needs a client certificate"))
		return
	}
	if p, paired := s.store.Get(fp); !paired || p.Kind != pairing.KindDevice {
		fail(http.StatusForbidden, "refused", errors.New("not a paired device"))
		return
	}
	q := r.URL.Query()
	o := rtc.Offer{Name: q.Get("name"), Path: q.Get("path"), Head: q.Get("head")}
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || size < 0 {
		fail(http.StatusBadRequest, "bad_request", errors.New("want ?name=…&size=bytes"))
		return
	}
	o.Size = size
	fw, err := s.files.file(s.inbox, fp, o)
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, inbox.ErrTooLarge) || errors.Is(err, inbox.ErrInboxFull):
			status = http.StatusRequestEntityTooLarge
		case errors.Is(err, ErrPeerBusy):
			status = http.StatusTooManyRequests
		}
		inboxFail(status, "inbox: file refused", err)
		return
	}
	s.recent.add(fp.ID(), "receive")
	rc := http.NewResponseController(w)
	have, h := fw.Have()
	if have > 0 {
		// The resume offer rides on the 100 Continue (see pairing's
		// HeaderOffset); an older sender ignores it, and never asks.
		w.Header().Set(HeaderOffset, strconv.FormatInt(have, 10))
		w.Header().Set(HeaderPrefix, hex.EncodeToString(h.Sum(nil)))
		w.WriteHeader(http.StatusContinue)
		w.Header().Del(HeaderOffset)
		w.Header().Del(HeaderPrefix)
	}
	body := &idleReader{r: io.LimitReader(r.Body, size-have+1), rc: rc}
	body.watch = rtc.WatchProgress(body.tooSlow)
	fw.OnStop(body.tooSlow)
	n, err := io.CopyBuffer(io.MultiWriter(fw, h), body, make([]byte, copyBuffer))
	body.watch.Done()
	sum := hex.EncodeToString(h.Sum(nil))
	// A transfer that broke off (the connection, the progress rule) keeps
	// its partial for a resume; a refused one (wrong size or sum, the
	// sender's discard) removes it.
	keep := false
	switch {
	case body.slow():
		err, keep = fmt.Errorf("%w (%d of %d bytes)", rtc.ErrTooSlow, have+n, size), true
	case err != nil:
		keep = true
	case r.Trailer.Get(HeaderDiscard) != "":
		fw.Abort()
		s.log.Warn("inbox: partial file removed: the sender's file differs", "from", src, "name", o.Rel(), "path", PathTLS)
		pairing.WriteJSON(w, http.StatusConflict, pairing.ErrorResponse{Error: rtc.ErrResumeMismatch.Error(), Reason: ReasonResumeMismatch})
		s.recent.finish(fp.ID(), "failed")
		return
	case have+n != size:
		err = errors.New("the file is not the announced size")
	case r.Trailer.Get("Sha256") != sum:
		err = errors.New("SHA-256 mismatch: the file changed on the way")
	}
	if err != nil {
		if keep {
			fw.Suspend()
		} else {
			fw.Abort()
		}
		inboxFail(http.StatusBadRequest, "inbox: transfer interrupted", err)
		s.recent.finish(fp.ID(), "failed")
		return
	}
	if err := fw.Commit(sum); err != nil {
		fail(http.StatusInternalServerError, "inbox", err)
		s.recent.finish(fp.ID(), "failed")
		return
	}
	rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	s.recent.finish(fp.ID(), "done")
	s.log.Info("received", "peer", fp.ID(), "name", o.Rel(), "bytes", size, "resumed_from", have, "moved", n, "path", PathTLS, "duration_ms", msSince(start))
	pairing.WriteJSON(w, http.StatusOK, pairing.TransferResponse{SHA256: sum})
}

// send sends the file o to p at addrs over the direct TLS path,
// resuming a partial the receiver kept.
func (s *direct) send(ctx context.Context, p pairing.PairedPeer, addrs []netip.AddrPort, o rtc.Offer, body io.Reader, start time.Time) (*SendResult, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: %s is not on the LAN and has no known address", pairing.ErrNoDirect, p.Name)
	}
	s.recent.add(p.ID, "send")
	dr, err := SendFileDirect(ctx, s.id, p.Fingerprint, addrs, o, body)
	if err != nil {
		s.recent.finish(p.ID, "failed")
		return nil, err
	}
	s.recent.finish(p.ID, "done")
	res := &SendResult{Peer: p.Name, Name: o.Rel(), Bytes: o.Size, SHA256: dr.SHA256, Path: PathTLS, DurationMS: msSince(start), Pair: dr.At.String(), ResumedBytes: dr.Resumed}
	s.log.Info("sent", "peer", p.ID, "name", p.Name, "kind", "file", "bytes", o.Size, "resumed_from", dr.Resumed, "path", PathTLS, "at", dr.At, "duration_ms", res.DurationMS)
	return res, nil
}

// idleReader moves the connection's read deadline on with every read: a
// long transfer may take minutes, a stalled one transferIdle at most, and
// one that crawls (see rtc.Progress) is cut at the end of its window.
type idleReader struct {
	r     io.Reader
	rc    *http.ResponseController
	watch *rtc.Progress

	mu      sync.Mutex
	crawled bool
}

func (i *idleReader) Read(p []byte) (int, error) {
	i.mu.Lock()
	if i.crawled {
		i.mu.Unlock()
		return 0, rtc.ErrTooSlow
	}
	i.rc.SetReadDeadline(time.Now().Add(transferIdle))
	i.mu.Unlock()
	n, err := i.r.Read(p)
	i.watch.Add(n)
	return n, err
}

// tooSlow cuts the transfer: the read under way fails at once.
func (i *idleReader) tooSlow() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.crawled = true
	i.rc.SetReadDeadline(time.Now())
}

func (i *idleReader) slow() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.crawled
}

// directLog is the latest direct transfers, for status.
type directLog struct {
	mu sync.Mutex
	cs []directEntry
}

type directEntry struct {
	c     Connection
	start time.Time
}

// add records a transfer with peer that starts now (role send or
// receive).
func (d *directLog) add(peer, role string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cs = append(d.cs, directEntry{start: time.Now(), c: Connection{Peer: peer, Role: role, Path: PathTLS,
		Events: []ConnEvent{{What: "transfer", State: "started"}}}})
	if len(d.cs) > keepSessions {
		d.cs = slices.Delete(d.cs, 0, 1)
	}
}

// finish records how the last unfinished transfer with peer ended.
func (d *directLog) finish(peer, state string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.cs) - 1; i >= 0; i-- {
		if e := &d.cs[i]; e.c.Peer == peer && len(e.c.Events) == 1 {
			e.c.Events = append(e.c.Events, ConnEvent{AtMS: msSince(e.start), What: "transfer", State: state})
			return
		}
	}
}

func (d *directLog) list() []Connection {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Connection
	for _, e := range d.cs {
		c := e.c
		c.Events = slices.Clone(c.Events)
		out = append(out, c)
	}
	return out
}
