package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/limit"
	"github.com/lanpairing/pairing/internal/run"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// The browser pairing (the page the QR code opens):
//
//	POST /p/offer {"sdp": offer}  →  {"sdp": answer}   (plain HTTP)
//	data channel: {"t":"pair","proof": base64(HMAC-SHA256(secret,
//	  browserLabel ‖ daemon fingerprint ‖ browser fingerprint)) or
//	  "code": "123456", "name": …}  →  {"t":"paired","name","max_file",
//	  "before":[{"id","name"}]} or {"t":"error","reason","error"}; then
//	  {"t":"text","text"} → {"t":"ack"} and the transfer protocol.
//	{"t":"renew","fingerprint":"AB:CD:…"} (a paired page's next
//	  certificate) → {"t":"renewed"}; the entry moves to it when it
//	  first connects (see pairing.Store.Move).
//	{"t":"replace","id"} (right after a first pairing: "I was paired
//	  before as id") → {"t":"replaced","name"}; the old entry goes in the
//	  same store write.
//	{"t":"unpaired"} from the daemon: `pairing unpair` forgot this page.
//
// The page checks that the answer's fingerprint is the QR code's before
// it applies it. A relay that swapped either fingerprint makes the proof
// fail, and the secret never leaves the page.
const (
	// offersPerMinute bounds offers per source address.
	offersPerMinute = 20
	// maxOfferSources caps the sources the offer limiter remembers.
	maxOfferSources = 1024
	// maxPending bounds the connections of browsers not paired yet: a
	// phone or two scanning a code, not a flood of strangers.
	maxPending = 8
	// pendingTimeout closes a stranger's connection that has not paired.
	pendingTimeout = 2 * time.Minute
	// replaceFor is how long after its first pairing a page may say which
	// paired browser it was: the person is answering the page's question.
	replaceFor = 10 * time.Minute
	// maxBefore caps the paired browsers' names a newly paired page is
	// offered to choose from.
	maxBefore = 20
)

// ErrTaken: another device paired with this window a moment ago.
var ErrTaken = errors.New("another device just paired with this code; show a new QR code")

// takenFor is how long after a pairing a stranger's offer hears ErrTaken
// instead of "closed".
const takenFor = 2 * time.Minute

// ErrBusy: too many browsers not paired yet are connected.
var ErrBusy = errors.New("too many devices are pairing at once; try again in a minute")

func newOfferLimiter() limit.PerSource {
	return limit.PerSource{Rate: rate.Limit(offersPerMinute) / 60, Burst: offersPerMinute, Max: maxOfferSources}
}

// browsers is the browser side of the sessions: the pages' offers, their
// channels (pairing, renewal, replace, then the transfer protocol), the
// pages open, and what is told to them.
type browsers struct {
	cfg     Config
	log     *slog.Logger
	group   *run.Group
	accept  *pairing.Accepter
	offers  limit.PerSource
	pending chan struct{} // a slot per connected browser not paired yet
	pages   pages
	sink    inboxSink
	bulk    *rtc.Bulk // the pages' files over HTTP
	// answer answers an offer with a new session (counted among the
	// device's connections and listed for status).
	answer func(ctx context.Context, offer string, fp ident.Fingerprint, onChannel func(*webrtc.DataChannel)) (*rtc.Session, string, error)
}

// PageAPI serves what the page asks of the daemon over plain HTTP: its
// offer (POST /p/offer: a paired browser always, an unknown one only
// while a pairing window is open) and its bulk path (GET and POST
// pairing.PathBulk+"<id>/<i>": its files' bytes, sealed; see rtc.Bulk).
func (s *Sessions) PageAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /p/offer", s.browsers.serveOffer)
	mux.Handle("GET "+pairing.PathBulk, s.browsers.bulk)
	mux.Handle("POST "+pairing.PathBulk, s.browsers.bulk)
	return mux
}

// Unpaired tells fp's open page, if any, that it is no longer paired
// (after `pairing unpair`): the page says so and closes its connection.
func (s *Sessions) Unpaired(fp ident.Fingerprint) {
	s.browsers.pages.tell(fp, pageNotice{T: "unpaired"})
}

// PagesOpen lists the paired browsers whose page is open now: they are
// online.
func (s *Sessions) PagesOpen() []ident.Fingerprint { return s.browsers.pages.open() }

func (s *browsers) serveOffer(w http.ResponseWriter, r *http.Request) {
	src := pairing.RemoteIP(r)
	fail := func(status int, reason string, err error) {
		s.log.Info("browser: offer refused", "from", src, "reason", reason, "err", err)
		pairing.WriteJSON(w, status, pairing.ErrorResponse{Error: err.Error(), Reason: reason})
	}
	if !s.offers.Allow(src, time.Now()) {
		fail(http.StatusTooManyRequests, "too_many", pairing.ErrTooMany)
		return
	}
	var req pairing.ConnectMessage
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		fail(http.StatusBadRequest, "bad_request", pairing.ErrBadRequest)
		return
	}
	fp, err := rtc.RemoteFingerprint(req.SDP)
	if err != nil {
		fail(http.StatusBadRequest, "bad_request", err)
		return
	}
	// Outside a window, only a browser paired before: never a native
	// device's fingerprint, which a browser cannot hold anyway.
	p, paired := s.cfg.Store.Get(fp)
	if !paired {
		// A paired page's renewed certificate is that page.
		p, paired = s.cfg.Store.Renewing(fp)
	}
	paired = paired && p.Kind == pairing.KindBrowser
	if w := s.cfg.Window.Info(); !paired && !w.Open {
		if w.Closed != "" {
			fail(http.StatusForbidden, "too_many_attempts", fmt.Errorf("%w: %s", pairing.ErrWindowClosed, w.Closed))
			return
		}
		if time.Since(w.Succeeded) < takenFor {
			fail(http.StatusForbidden, "taken", ErrTaken)
			return
		}
		fail(http.StatusForbidden, "window_closed", pairing.ErrWindowClosed)
		return
	}
	if !paired {
		select {
		case s.pending <- struct{}{}:
		default:
			fail(http.StatusServiceUnavailable, "busy", ErrBusy)
			return
		}
	}
	var once sync.Once
	release := func() {
		if !paired {
			once.Do(func() { <-s.pending })
		}
	}
	// Only candidates on our links: an offer must not make us probe
	// hosts of its choosing.
	offer, dropped := rtc.FilterCandidates(req.SDP, s.cfg.OnLink, rtc.MaxRemoteCandidates)
	if dropped > 0 {
		s.log.Info("browser: offer candidates dropped (off-link or too many)", "from", src, "dropped", dropped)
	}
	ctx, cancel := context.WithTimeout(r.Context(), answerTimeout)
	defer cancel()
	ss, answer, err := s.answer(ctx, offer, fp, func(dc *webrtc.DataChannel) { s.channel(dc, fp, src) })
	if err != nil {
		release()
		fail(http.StatusBadRequest, "bad_request", err)
		return
	}
	// A paired page's connection lives as long as the page: it is how the
	// device reaches it. A page that goes away closes it, or ICE notices.
	// A stranger's closes after pendingTimeout unless it paired by then.
	if !s.group.Go(func(ctx context.Context) {
		defer release()
		defer ss.Close()
		if paired {
			select {
			case <-ss.Done():
			case <-ctx.Done():
			}
			return
		}
		// A stranger holds a pending slot until it pairs (checked every
		// few seconds), and its connection closes unless it pairs in time.
		deadline := time.After(pendingTimeout)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ss.Done():
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, ok := s.cfg.Store.Get(fp); ok {
					release()
				}
			case <-deadline:
				if _, ok := s.cfg.Store.Get(fp); !ok {
					s.log.Info("browser: closing a connection that did not pair", "peer", fp.ID(), "from", src, "after", pendingTimeout)
					return
				}
				deadline = nil
			}
		}
	}) {
		release()
		ss.Close()
	}
	pairing.WriteJSON(w, http.StatusOK, pairing.ConnectMessage{SDP: answer})
}
