package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/limit"
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

// ServeOffer answers a browser's offer (POST /p/offer): a paired browser
// always, an unknown one only while a pairing window is open.
func (s *Sessions) ServeOffer(w http.ResponseWriter, r *http.Request) {
	src := pairing.RemoteIP(r)
	fail := func(status int, reason string, err error) {
		s.log.Info("browser: offer refused", "from", src, "reason", reason, "err", err)
		pairing.WriteJSON(w, status, pairing.ErrorResponse{Error: err.Error(), Reason: reason})
	}
	if !s.bounds.offers.Allow(src, time.Now()) {
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
		case s.bounds.pending <- struct{}{}:
		default:
			fail(http.StatusServiceUnavailable, "busy", ErrBusy)
			return
		}
	}
	var once sync.Once
	release := func() {
		if !paired {
			once.Do(func() { <-s.bounds.pending })
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
	ss, answer, err := s.endpoint(true).Answer(ctx, offer, fp, func(dc *webrtc.DataChannel) { s.browserChannel(dc, fp, src) })
	if err != nil {
		release()
		fail(http.StatusBadRequest, "bad_request", err)
		return
	}
	s.recent.add(ss)
	s.track(fp, ss)
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

type browserMessage struct {
	T     string `json:"t"`
	Proof string `json:"proof,omitempty"`
	Code  string `json:"code,omitempty"`
	Name  string `json:"name,omitempty"`
	Text  string `json:"text,omitempty"`
	// Fingerprint is a renewal's next certificate (SDP form).
	Fingerprint string `json:"fingerprint,omitempty"`
	// ID names the paired browser a replace takes the place of.
	ID string `json:"id,omitempty"`
}

// browserChannel runs the page's side of the data channel: pairing
// first, then the transfer protocol both ways (texts and files from the
// page into the inbox; texts and files to the page).
func (s *Sessions) browserChannel(dc *webrtc.DataChannel, fp ident.Fingerprint, src netip.Addr) {
	var mu sync.Mutex   // one pairing message at a time
	var fresh time.Time // when this channel first paired (for a replace)
	// A renewed certificate's first connection: the device moves to it,
	// proved by DTLS with its key, and its old certificate is forgotten.
	if _, ok := s.cfg.Store.Get(fp); !ok {
		if old, ok := s.cfg.Store.Renewing(fp); ok {
			if _, err := s.cfg.Store.Move(fp); err != nil {
				s.log.Warn("browser: renewal not moved", "peer", old.ID, "next", fp.ID(), "err", err)
			} else {
				s.log.Info("browser: moved to its renewed certificate", "peer", fp.ID(), "was", old.ID, "name", old.Name)
			}
		}
	}
	d := rtc.NewDuplex(dc, fp, s.sink, s.log)
	// Answers go out bounded: a page that never reads them is closed.
	send := func(m map[string]any) { d.Reply(m) }
	// The page's channel, for what goes to it (pion keeps one OnOpen per
	// channel, and the session has it).
	s.pages.set(fp, page{dc: dc, d: d})
	dc.OnClose(func() {
		s.pages.remove(fp, dc)
		d.Closed() // a file half received is removed
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		_, paired := s.cfg.Store.Get(fp)
		if m.IsString {
			var msg browserMessage
			if len(m.Data) > pairing.MaxRequestBody || json.Unmarshal(m.Data, &msg) != nil {
				send(map[string]any{"t": "error", "reason": "bad_request", "error": "malformed message"})
				return
			}
			if msg.T == "pair" {
				mu.Lock()
				defer mu.Unlock()
				if paired {
					s.log.Info("browser: already paired", "peer", fp.ID(), "from", src)
					send(pairedMessage(s.cfg, true))
					return
				}
				if s.pairBrowser(msg, fp, src, send) {
					fresh = time.Now()
				}
				return
			}
			if paired && msg.T == "renew" {
				s.renewBrowser(msg, fp, send)
				return
			}
			if paired && msg.T == "replace" {
				mu.Lock()
				defer mu.Unlock()
				if fresh.IsZero() || time.Since(fresh) > replaceFor {
					send(map[string]any{"t": "error", "reason": "bad_request", "error": "a page says which device it was only right after pairing"})
					return
				}
				if s.replaceBrowser(msg, fp, send) {
					fresh = time.Time{} // once
				}
				return
			}
		}
		if !paired {
			if m.IsString {
				send(map[string]any{"t": "error", "reason": "bad_request", "error": "pair first"})
			}
			return
		}
		d.Handle(m.IsString, m.Data)
	})
}

// pairedMessage tells the page it is paired, with what it needs to know
// before it sends a file: the largest file the inbox takes.
func pairedMessage(cfg Config, again bool) map[string]any {
	m := map[string]any{"t": "paired", "name": cfg.Name(), "max_file": cfg.Inbox.MaxFile}
	if again {
		m["again"] = true
	}
	return m
}

// pairBrowser checks a page's proof or code and stores it; it reports
// whether the page paired.
func (s *Sessions) pairBrowser(msg browserMessage, fp ident.Fingerprint, src netip.Addr, send func(map[string]any)) bool {
	var err error
	if msg.Code != "" {
		err = s.cfg.Window.CheckCode(src, msg.Code)
	} else {
		proof, derr := base64.StdEncoding.DecodeString(msg.Proof)
		if derr != nil {
			proof = nil
		}
		err = s.cfg.Window.CheckProof(src, func(secret []byte) bool {
			return pairing.CheckBrowserProof(proof, secret, s.cfg.Identity.Fingerprint, fp)
		})
	}
	if err != nil {
		reason, _ := pairing.Reason(err)
		s.log.Warn("browser: pairing failed", "peer", fp.ID(), "from", src, "reason", reason, "err", err)
		send(map[string]any{"t": "error", "reason": reason, "error": err.Error()})
		return false
	}
	name := msg.Name
	if beacon.ValidName(name) != nil {
		name = "browser"
	}
	now := time.Now().UTC()
	peer := pairing.PairedPeer{Fingerprint: fp, Name: name, Kind: pairing.KindBrowser, PairedAt: now, LastSeen: now, Addresses: []netip.Addr{src}}
	if err := s.cfg.Store.Put(peer); err != nil {
		send(map[string]any{"t": "error", "reason": "internal", "error": err.Error()})
		return false
	}
	s.cfg.Window.Close()
	s.log.Info("paired", "peer", fp.ID(), "name", name, "kind", pairing.KindBrowser, "from", src)
	m := pairedMessage(s.cfg, false)
	// The other paired browsers: a phone that lost its state may say
	// which one it was (the person proved the secret just now).
	before := []map[string]string{}
	for _, p := range s.cfg.Store.List() {
		if p.Kind == pairing.KindBrowser && p.Fingerprint != fp && len(before) < maxBefore {
			before = append(before, map[string]string{"id": p.ID, "name": p.Name})
		}
	}
	m["before"] = before
	send(m)
	return true
}

// renewBrowser records a paired page's next certificate.
func (s *Sessions) renewBrowser(msg browserMessage, fp ident.Fingerprint, send func(map[string]any)) {
	next, err := ident.Parse(msg.Fingerprint)
	if err == nil && next == fp {
		err = errors.New("the next certificate is the current one")
	}
	if err == nil {
		err = s.cfg.Store.SetNext(fp, next)
	}
	if err != nil {
		s.log.Warn("browser: renewal refused", "peer", fp.ID(), "err", err)
		send(map[string]any{"t": "error", "reason": "renew_refused", "error": err.Error()})
		return
	}
	s.log.Info("browser: renewing its certificate", "peer", fp.ID(), "next", next.ID())
	send(map[string]any{"t": "renewed"})
}

// replaceBrowser makes the page that just paired the paired browser it
// says it was: that entry goes, and its name stays, in one store write.
func (s *Sessions) replaceBrowser(msg browserMessage, fp ident.Fingerprint, send func(map[string]any)) bool {
	cur, ok := s.cfg.Store.Get(fp)
	old, err := pairing.Resolve(s.cfg.Store.List(), msg.ID)
	if err == nil && (!ok || old.Kind != pairing.KindBrowser || old.Fingerprint == fp || old.ID != msg.ID) {
		err = fmt.Errorf("%w %q", pairing.ErrUnknownPeer, msg.ID)
	}
	if err == nil {
		cur.Name = old.Name
		err = s.cfg.Store.Replace(old.Fingerprint, cur)
	}
	if err != nil {
		s.log.Warn("browser: replace refused", "peer", fp.ID(), "err", err)
		send(map[string]any{"t": "error", "reason": "replace_refused", "error": err.Error()})
		return false
	}
	s.log.Info("browser: re-paired in place of its old entry", "peer", fp.ID(), "was", old.ID, "name", old.Name)
	s.pages.tell(old.Fingerprint, map[string]any{"t": "unpaired"})
	send(map[string]any{"t": "replaced", "name": old.Name})
	return true
}

// Unpaired tells fp's open page, if any, that it is no longer paired
// (after `pairing unpair`): the page says so and closes its connection.
func (s *Sessions) Unpaired(fp ident.Fingerprint) {
	s.pages.tell(fp, map[string]any{"t": "unpaired"})
}

// tell sends m to fp's open page, if it has one.
func (p *pages) tell(fp ident.Fingerprint, m map[string]any) {
	p.mu.Lock()
	pg, ok := p.by[fp]
	p.mu.Unlock()
	if ok {
		pg.d.Reply(m)
	}
}
