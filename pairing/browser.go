package pairing

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// The browser pairing (the page the QR code opens):
//
//	POST /p/offer {"sdp": offer}  →  {"sdp": answer}   (plain HTTP)
//	data channel: {"t":"pair","proof": base64(HMAC-SHA256(secret,
//	  browserLabel ‖ daemon fingerprint ‖ browser fingerprint)) or
//	  "code": "123456", "name": …}  →  {"t":"paired","name"} or
//	  {"t":"error","reason","error"}; then {"t":"text","text"} → {"t":"ack"}
//
// The page checks that the answer's fingerprint is the QR code's before
// it applies it. A relay that swapped either fingerprint makes the proof
// fail, and the secret never leaves the page.
const (
	browserLabel = "pairing browser proof v1"
	// offersPerMinute bounds offers per source address.
	offersPerMinute = 20
)

func browserProof(secret []byte, daemon, browser ident.Fingerprint) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(browserLabel))
	m.Write(daemon[:])
	m.Write(browser[:])
	return m.Sum(nil)
}

type offerLimiter struct {
	mu sync.Mutex
	by map[netip.Addr]*rate.Limiter
}

func (l *offerLimiter) allow(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil || len(l.by) > 1024 {
		l.by = map[netip.Addr]*rate.Limiter{}
	}
	lim := l.by[a]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(offersPerMinute)/60, offersPerMinute)
		l.by[a] = lim
	}
	return lim.Allow()
}

// handleBrowserOffer answers a browser's offer: a paired browser always,
// an unknown one only while a pairing window is open.
func (d *Daemon) handleBrowserOffer(w http.ResponseWriter, r *http.Request) {
	src := remoteIP(r)
	fail := func(status int, reason string, err error) {
		d.log.Info("browser: offer refused", "from", src, "reason", reason, "err", err)
		writeJSONStatus(w, status, errorResponse{Error: err.Error(), Reason: reason})
	}
	if !d.offers.allow(src) {
		fail(http.StatusTooManyRequests, "too_many", ErrTooMany)
		return
	}
	var req ConnectMessage
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		fail(http.StatusBadRequest, "bad_request", ErrBadRequest)
		return
	}
	fp, err := rtc.RemoteFingerprint(req.SDP)
	if err != nil {
		fail(http.StatusBadRequest, "bad_request", err)
		return
	}
	if _, paired := d.store.Get(fp); !paired && !d.window.Info().Open {
		fail(http.StatusForbidden, "window_closed", ErrWindowClosed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), signalTimeout)
	defer cancel()
	s, answer, err := d.endpoint(true).Answer(ctx, req.SDP, fp, func(dc *webrtc.DataChannel) { d.browserChannel(dc, fp, src) })
	if err != nil {
		fail(http.StatusBadRequest, "bad_request", err)
		return
	}
	d.track(s)
	// The connection lives as long as the page: it is how the device
	// reaches the page. A page that goes away closes it, or ICE notices.
	d.goLoop(func(ctx context.Context) {
		select {
		case <-s.Done():
		case <-ctx.Done():
		}
		s.Close()
	})
	writeJSONStatus(w, http.StatusOK, ConnectMessage{SDP: answer})
}

type browserMessage struct {
	T     string `json:"t"`
	Proof string `json:"proof,omitempty"`
	Code  string `json:"code,omitempty"`
	Name  string `json:"name,omitempty"`
	Text  string `json:"text,omitempty"`
}

// browserChannel runs the page's side of the data channel.
func (d *Daemon) browserChannel(dc *webrtc.DataChannel, fp ident.Fingerprint, src netip.Addr) {
	send := func(m map[string]any) {
		b, _ := json.Marshal(m)
		dc.SendText(string(b))
	}
	var mu sync.Mutex // one message at a time
	// The page's channel, for messages to it (pion keeps one OnOpen per
	// channel, and the session has it).
	d.mu.Lock()
	d.pages[fp] = dc
	d.mu.Unlock()
	dc.OnClose(func() {
		d.mu.Lock()
		if d.pages[fp] == dc {
			delete(d.pages, fp)
		}
		d.mu.Unlock()
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		mu.Lock()
		defer mu.Unlock()
		var msg browserMessage
		if !m.IsString || len(m.Data) > maxRequestBody || json.Unmarshal(m.Data, &msg) != nil {
			send(map[string]any{"t": "error", "reason": "bad_request", "error": "malformed message"})
			return
		}
		_, paired := d.store.Get(fp)
		switch {
		case msg.T == "pair" && paired:
			d.log.Info("browser: already paired", "peer", fp.ID(), "from", src)
			send(map[string]any{"t": "paired", "name": d.Name(), "again": true})
		case msg.T == "pair":
			d.pairBrowser(msg, fp, src, send)
		case msg.T == "text" && paired:
			if err := d.cfg.Inbox.Text(fp, msg.Text); err != nil {
				send(map[string]any{"t": "error", "reason": "inbox", "error": err.Error()})
				return
			}
			send(map[string]any{"t": "ack"})
		default:
			send(map[string]any{"t": "error", "reason": "bad_request", "error": "pair first"})
		}
	})
}

func (d *Daemon) pairBrowser(msg browserMessage, fp ident.Fingerprint, src netip.Addr, send func(map[string]any)) {
	var err error
	if msg.Code != "" {
		err = d.window.CheckCode(src, msg.Code)
	} else {
		proof, derr := base64.StdEncoding.DecodeString(msg.Proof)
		if derr != nil {
			proof = nil
		}
		err = d.window.CheckProof(src, func(secret []byte) bool {
			return hmac.Equal(proof, browserProof(secret, d.id.Fingerprint, fp))
		})
	}
	if err != nil {
		reason := "bad_request"
		for _, x := range reasons {
			if errors.Is(err, x.err) {
				reason = x.reason
			}
		}
		d.log.Warn("browser: pairing failed", "peer", fp.ID(), "from", src, "reason", reason, "err", err)
		send(map[string]any{"t": "error", "reason": reason, "error": err.Error()})
		return
	}
	name := msg.Name
	if beacon.ValidName(name) != nil {
		name = "browser"
	}
	peer := PairedPeer{Fingerprint: fp, Name: name, Kind: KindBrowser, PairedAt: time.Now().UTC(), LastSeen: time.Now().UTC(), Addresses: []netip.Addr{src}}
	if err := d.store.Put(peer); err != nil {
		send(map[string]any{"t": "error", "reason": "internal", "error": err.Error()})
		return
	}
	d.window.Close()
	d.log.Info("paired", "peer", fp.ID(), "name", name, "kind", KindBrowser, "from", src)
	send(map[string]any{"t": "paired", "name": d.Name()})
}

// ErrPageClosed means the paired browser has no page open now.
var ErrPageClosed = errors.New("the browser has no pairing page open now (a browser gets messages while its page is open)")

// sendToPage delivers a text to a paired browser's open page.
func (d *Daemon) sendToPage(fp ident.Fingerprint, text string) error {
	d.mu.Lock()
	dc := d.pages[fp]
	d.mu.Unlock()
	if dc == nil {
		return ErrPageClosed
	}
	b, _ := json.Marshal(map[string]any{"t": "text", "text": text})
	return dc.SendText(string(b))
}
