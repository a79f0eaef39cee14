package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// pageRequest is a message from the page; T says which (see browser.go
// for the exchange), and the fields it does not use are empty.
type pageRequest struct {
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

// decodePageRequest reads one text message from the page, at most
// pairing.MaxRequestBody bytes.
func decodePageRequest(data []byte) (pageRequest, bool) {
	var msg pageRequest
	if len(data) > pairing.MaxRequestBody || json.Unmarshal(data, &msg) != nil {
		return pageRequest{}, false
	}
	return msg, true
}

// The answers to the page. Their fields are in the order of their JSON
// names, the order the page has always received them in.

// pageError: {"error","reason","t":"error"}.
type pageError struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	T      string `json:"t"`
}

func pageErr(reason, text string) pageError {
	return pageError{Error: text, Reason: reason, T: "error"}
}

// pagePaired tells the page it is paired, with what it needs to know
// before it sends a file: the largest file the inbox takes. Before (a
// first pairing only) lists the other paired browsers, so a phone that
// lost its state may say which one it was.
type pagePaired struct {
	Again   bool          `json:"again,omitempty"`
	Before  *[]pageDevice `json:"before,omitempty"`
	MaxFile int64         `json:"max_file"`
	Name    string        `json:"name"`
	T       string        `json:"t"`
}

type pageDevice struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// pageReplaced: the page is now the paired browser called Name.
type pageReplaced struct {
	Name string `json:"name"`
	T    string `json:"t"`
}

// pageNotice is an answer that is its type only: "renewed", "unpaired".
type pageNotice struct {
	T string `json:"t"`
}

// channel runs the page's side of the data channel: pairing first, then
// the transfer protocol both ways (texts and files from the page into the
// inbox; texts and files to the page).
func (s *browsers) channel(dc *webrtc.DataChannel, fp ident.Fingerprint, src netip.Addr) {
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
	d.UseBulk(s.bulk)
	// Answers go out bounded: a page that never reads them is closed.
	send := func(m any) { d.Reply(m) }
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
			msg, ok := decodePageRequest(m.Data)
			if !ok {
				send(pageErr("bad_request", "malformed message"))
				return
			}
			switch {
			case msg.T == "pair":
				mu.Lock()
				defer mu.Unlock()
				if paired {
					s.log.Info("browser: already paired", "peer", fp.ID(), "from", src)
					send(s.paired(true, nil))
					return
				}
				if s.pair(msg, fp, src, send) {
					fresh = time.Now()
				}
				return
			case paired && msg.T == "renew":
				s.renew(msg, fp, send)
				return
			case paired && msg.T == "replace":
				mu.Lock()
				defer mu.Unlock()
				if fresh.IsZero() || time.Since(fresh) > replaceFor {
					send(pageErr("bad_request", "a page says which device it was only right after pairing"))
					return
				}
				if s.replace(msg, fp, send) {
					fresh = time.Time{} // once
				}
				return
			}
		}
		if !paired {
			if m.IsString {
				send(pageErr("bad_request", "pair first"))
			}
			return
		}
		d.Handle(m.IsString, m.Data)
	})
}

// paired is the answer to a page that paired (again: it was already).
func (s *browsers) paired(again bool, before *[]pageDevice) pagePaired {
	return pagePaired{Again: again, Before: before, MaxFile: s.cfg.Inbox.MaxFile, Name: s.cfg.Name(), T: "paired"}
}

// pair checks a page's proof or code and stores it (pairing.Accepter);
// it reports whether the page paired.
func (s *browsers) pair(msg pageRequest, fp ident.Fingerprint, src netip.Addr, send func(any)) bool {
	name := msg.Name
	if beacon.ValidName(name) != nil {
		name = "browser"
	}
	proof, err := base64.StdEncoding.DecodeString(msg.Proof)
	if err != nil {
		proof = nil
	}
	_, err = s.accept.Accept(pairing.Attempt{
		Peer: pairing.PairedPeer{Fingerprint: fp, Name: name, Kind: pairing.KindBrowser, Addresses: []netip.Addr{src}},
		Code: msg.Code,
		Proof: func(secret []byte) bool {
			return pairing.CheckBrowserProof(proof, secret, s.cfg.Identity.Fingerprint, fp)
		},
	})
	if errors.Is(err, pairing.ErrNotStored) {
		send(pageErr("internal", err.Error()))
		return false
	}
	if err != nil {
		reason, _ := pairing.Reason(err)
		send(pageErr(reason, err.Error()))
		return false
	}
	// The other paired browsers: a phone that lost its state may say
	// which one it was (the person proved the secret just now).
	before := []pageDevice{}
	for _, p := range s.cfg.Store.List() {
		if p.Kind == pairing.KindBrowser && p.Fingerprint != fp && len(before) < maxBefore {
			before = append(before, pageDevice{ID: p.ID, Name: p.Name})
		}
	}
	send(s.paired(false, &before))
	return true
}

// renew records a paired page's next certificate.
func (s *browsers) renew(msg pageRequest, fp ident.Fingerprint, send func(any)) {
	next, err := ident.Parse(msg.Fingerprint)
	if err == nil && next == fp {
		err = errors.New("the next certificate is the current one")
	}
	if err == nil {
		err = s.cfg.Store.SetNext(fp, next)
	}
	if err != nil {
		s.log.Warn("browser: renewal refused", "peer", fp.ID(), "err", err)
		send(pageErr("renew_refused", err.Error()))
		return
	}
	s.log.Info("browser: renewing its certificate", "peer", fp.ID(), "next", next.ID())
	send(pageNotice{T: "renewed"})
}

// replace makes the page that just paired the paired browser it says it
// was: that entry goes, and its name stays, in one store write.
func (s *browsers) replace(msg pageRequest, fp ident.Fingerprint, send func(any)) bool {
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
		send(pageErr("replace_refused", err.Error()))
		return false
	}
	s.log.Info("browser: re-paired in place of its old entry", "peer", fp.ID(), "was", old.ID, "name", old.Name)
	s.pages.tell(old.Fingerprint, pageNotice{T: "unpaired"})
	send(pageReplaced{Name: old.Name, T: "replaced"})
	return true
}

// send delivers a text or a file to the paired browser fp through its
// open page, or fails with ErrPageClosed.
func (s *browsers) send(ctx context.Context, p pairing.PairedPeer, kind string, text []byte, rel string, size int64, body io.Reader, start time.Time) (*SendResult, error) {
	d, err := s.pages.get(p.Fingerprint)
	if err != nil {
		return nil, err
	}
	// A browser that was closed or killed sends no goodbye: its page
	// looks open until ICE gives up, 10 s later. A ping first fails
	// the send within pingTimeout instead.
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err = d.Ping(pctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w (it does not answer: closed, or the phone is asleep)", ErrPageClosed)
	}
	res := &SendResult{Peer: p.Name, Name: rel, Path: PathWebRTC, Reused: true}
	if kind == "text" {
		err, res.Bytes = d.SendText(ctx, string(text)), int64(len(text))
	} else {
		var sent rtc.Sent
		sent, err = d.SendFile(ctx, offerOf(rel, size), body, nil)
		res.SHA256, res.ResumedBytes, res.Bytes = sent.SHA256, sent.Resumed, size
		if sent.Bulk {
			res.Path = PathBulk
		}
	}
	if errors.Is(err, rtc.ErrGone) {
		return nil, fmt.Errorf("%w (it closed during the send)", ErrPageClosed)
	}
	if err != nil {
		return nil, err
	}
	res.DurationMS = msSince(start)
	s.log.Info("sent", "peer", p.ID, "name", p.Name, "kind", kind, "bytes", res.Bytes, "resumed_from", res.ResumedBytes, "to", "page", "path", res.Path, "duration_ms", res.DurationMS)
	return res, nil
}

// tell sends m to fp's open page, if it has one.
func (p *pages) tell(fp ident.Fingerprint, m any) {
	p.mu.Lock()
	pg, ok := p.by[fp]
	p.mu.Unlock()
	if ok {
		pg.d.Reply(m)
	}
}
