package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/run"
	"github.com/lanpairing/pairing/internal/turncred"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
	"github.com/lanpairing/pairing/pairing/rtc"
)

const (
	// answerTimeout bounds answering one offer.
	answerTimeout = 3 * time.Second
	// openTimeout bounds the wait for an answered connection's channel.
	openTimeout = 30 * time.Second
	// maxText bounds a text message; larger ones go as files.
	maxText = 32 << 10
	// maxDial bounds the addresses one connection tries at once.
	maxDial = 8
)

// ErrPageClosed means the paired browser has no page open now.
var ErrPageClosed = errors.New("the phone's page is not open; open the bookmark or scan again")

// Config is what Sessions works with; the parts it names are owned by
// others and used through their own methods.
type Config struct {
	Identity *pairing.Identity
	Store    *pairing.Store
	// Window is the pairing window a browser proves itself against.
	Window *pairing.Window
	Inbox  *inbox.Inbox
	// WebRTC are complete settings (config.Complete fills them in).
	WebRTC config.WebRTCSettings
	// Name is this device's current name.
	Name func() string
	// Lookup is where a device is on the LAN now (nil: nowhere).
	Lookup func(ident.Fingerprint) []netip.AddrPort
	// OnLink reports whether an address is on one of our links: the only
	// candidates a browser's offer may name.
	OnLink func(netip.Addr) bool
	Logger *slog.Logger
}

// Sessions is the WebRTC connections of the daemon: kept for sends,
// answered for paired devices, and the browser pages. Safe for
// concurrent use.
type Sessions struct {
	cfg    Config
	log    *slog.Logger
	group  *run.Group
	pool   *pool
	recent recent
	// browsers is the pages' side: offers, channels, pairing, sends.
	browsers *browsers
	direct   *direct
	bounds   bounds
	sink     inboxSink // the inbox, within each device's file slots

	mu     sync.Mutex
	webrtc config.WebRTCSettings // live: a config reload changes it
}

// New returns Sessions that serve until Close.
func New(cfg Config) *Sessions {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnLink == nil {
		cfg.OnLink = func(netip.Addr) bool { return false }
	}
	files := &partials{}
	s := &Sessions{cfg: cfg, log: cfg.Logger, group: run.New(), pool: newPool(cfg.Logger), webrtc: cfg.WebRTC,
		bounds: bounds{files: files}, sink: inboxSink{in: cfg.Inbox, p: files},
		direct: &direct{id: cfg.Identity, store: cfg.Store, inbox: cfg.Inbox, files: files, log: cfg.Logger}}
	accept := &pairing.Accepter{Window: cfg.Window, Store: cfg.Store, Logger: cfg.Logger}
	if cfg.Identity != nil {
		accept.Self = cfg.Identity.Fingerprint
	}
	s.browsers = &browsers{cfg: cfg, log: cfg.Logger, group: s.group, offers: newOfferLimiter(), pending: make(chan struct{}, maxPending), sink: s.sink, bulk: rtc.NewBulk(cfg.Logger),
		accept: accept, answer: s.answerBrowser}
	return s
}

// answerBrowser answers a page's offer with a new session, counted among
// the browser's connections.
func (s *Sessions) answerBrowser(ctx context.Context, offer string, fp ident.Fingerprint, onChannel func(*webrtc.DataChannel)) (*rtc.Session, string, error) {
	ss, answer, err := s.endpoint(true).Answer(ctx, offer, fp, onChannel)
	if err != nil {
		return nil, "", err
	}
	s.recent.add(ss)
	s.track(fp, ss)
	return ss, answer, nil
}

// bounds are what strangers and devices may hold of the sessions.
type bounds struct {
	files *partials // the files arriving, per device
	conns peerConns // the answered connections, per device
}

// track counts ss among fp's answered connections until it closes; the
// oldest past maxConnsPerPeer closes.
func (s *Sessions) track(fp ident.Fingerprint, ss *rtc.Session) {
	if old := s.bounds.conns.add(fp, ss); old != nil {
		s.log.Info("webrtc: closing a device's oldest connection", "peer", fp.ID(), "max", maxConnsPerPeer)
		old.Close()
	}
	if !s.group.Go(func(ctx context.Context) {
		select {
		case <-ss.Done():
		case <-ctx.Done():
		}
		s.bounds.conns.remove(fp, ss)
	}) {
		s.bounds.conns.remove(fp, ss)
	}
}

// Close closes every connection and waits for the goroutines; safe twice.
func (s *Sessions) Close() {
	for _, ss := range append(s.recent.clear(), s.pool.drop(true)...) {
		ss.Close()
	}
	s.group.Close()
}

// SetWebRTC applies new WebRTC settings to the next connections. When the
// servers, credentials or relay policy changed, kept connections close so
// the next send uses the new ones.
func (s *Sessions) SetWebRTC(w config.WebRTCSettings) {
	s.mu.Lock()
	changed := !s.webrtc.Equal(w)
	s.webrtc = w
	s.mu.Unlock()
	if changed {
		s.log.Info("webrtc settings changed; closing kept connections", "stun", len(w.STUN), "turn", len(w.TURN), "relay_only", w.RelayOnly)
		for _, ss := range s.pool.drop(false) {
			ss.Close()
		}
	}
}

func (s *Sessions) settings() config.WebRTCSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webrtc
}

// Connections are the latest sessions, newest last, for status.
func (s *Sessions) Connections() []Connection {
	out := []Connection{}
	for _, ss := range s.recent.list() {
		ev, pair := ss.Events()
		c := Connection{Peer: ss.Peer.ID(), Role: ss.Role, Path: PathWebRTC, Pair: pair}
		for _, e := range ev {
			c.Events = append(c.Events, ConnEvent{AtMS: e.AtMS, What: e.What, State: e.State})
		}
		out = append(out, c)
	}
	return append(out, s.direct.recent.list()...)
}

// endpoint makes the WebRTC endpoint with the configured ICE servers
// (TURN REST credentials minted fresh for each session); for a browser it
// resolves the .local names its host candidates hide behind.
func (s *Sessions) endpoint(browser bool) *rtc.Endpoint {
	w := s.settings()
	var servers []webrtc.ICEServer
	for _, u := range w.STUN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}})
	}
	user, pass := w.TURNUser, w.TURNPassword
	if w.TURNSecret != "" {
		if user == "" {
			user = "pairing"
		}
		user, pass = turncred.Mint(w.TURNSecret, user, 24*time.Hour, time.Now())
	}
	for _, u := range w.TURN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}, Username: user, Credential: pass})
	}
	id := s.cfg.Identity
	cfg := rtc.Config{Certificate: rtc.Certificate(id.Key, id.Cert), ICEServers: servers, RelayOnly: w.RelayOnly,
		MDNSQuery: browser, Logger: s.log}
	if browser {
		// A browser is on our links (it loaded the page from us): no packet
		// goes elsewhere, whatever its offer names or its mDNS answers say.
		// Paired daemons are not held to it: they may be a router away, and
		// a pinned TLS connection vouched for the offer.
		cfg.Allow = s.cfg.OnLink
	}
	return rtc.NewEndpoint(cfg)
}

// Connect answers a paired device's offer. Before anything is set up,
// every fingerprint in the offer must be the TLS client's, and paired.
func (s *Sessions) Connect(ctx context.Context, offer string, tlsPeer ident.Fingerprint, from netip.Addr) (string, error) {
	fp, err := rtc.Authorize(offer, tlsPeer, func(f ident.Fingerprint) bool { _, ok := s.cfg.Store.Get(f); return ok })
	if err != nil {
		s.log.Warn("webrtc: connection refused", "from", from, "tls_peer", tlsPeer.ID(), "sdp_fingerprint", fp.ID(), "err", err)
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	ss, answer, err := s.endpoint(false).Answer(ctx, offer, fp, func(dc *webrtc.DataChannel) {
		rtc.Serve(dc, fp, s.sink, s.log)
	})
	if err != nil {
		return "", err
	}
	s.recent.add(ss)
	s.track(fp, ss)
	idle := 2 * s.settings().ConnectionIdle
	if !s.group.Go(func(ctx context.Context) {
		cctx, cancel := context.WithTimeout(ctx, openTimeout)
		_, err := ss.Channel(cctx)
		cancel()
		if err != nil {
			s.log.Info("webrtc: incoming connection did not open", "peer", fp.ID(), "err", err)
			ss.Close()
			return
		}
		// The receiver closes a connection no message went over for
		// twice the sender's idle time, or when the daemon stops.
		if ss.WaitIdle(ctx, idle) {
			s.log.Info("webrtc: closing idle connection", "peer", ss.Peer.ID(), "idle", idle)
		}
		ss.Close()
	}) {
		ss.Close()
	}
	return answer, nil
}

// Send delivers a text (kind "text", body the text) or a file (kind
// "file", body its size bytes) to the paired device p. A file goes over
// the direct TLS path when it connects (path "" or auto: the transfer
// setting decides; tls or webrtc force one). Otherwise it uses the WebRTC
// connection kept from the last send when that still answers, else a new
// one, kept for the next send until it has been idle for connection-idle.
func (s *Sessions) Send(ctx context.Context, p pairing.PairedPeer, kind, name string, size int64, body io.Reader, path string) (_ *SendResult, err error) {
	start := time.Now()
	// What is wrong with the request is said before connecting.
	var text []byte
	switch kind {
	case "text":
		if text, err = io.ReadAll(io.LimitReader(body, maxText+1)); err != nil {
			return nil, err
		}
		if len(text) > maxText {
			return nil, errors.New("a text message is at most 32 KiB; send a file instead")
		}
	case "file":
		// name is a relative path for a folder's file: every component
		// passes the file name rule.
		if err := pairing.CheckPath(name); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if p.Kind == pairing.KindBrowser {
		// A browser is reached through its open page, not a new connection.
		return s.browsers.send(ctx, p, kind, text, name, size, body, start)
	}
	w := s.settings()
	if path == "" {
		path = w.Transfer
	}
	switch {
	case path != "" && path != PathAuto && path != PathTLS && path != PathWebRTC:
		return nil, fmt.Errorf("unknown path %q: want auto, tls or webrtc", path)
	case kind == "file" && path != PathWebRTC && (!w.RelayOnly || path == PathTLS):
		res, err := s.direct.send(ctx, p, addrsOf(s.cfg, p), offerOf(name, size), body, start)
		if err == nil || path == PathTLS || !errors.Is(err, pairing.ErrNoDirect) {
			return res, err
		}
		s.log.Info("transfer: no direct path; trying WebRTC", "peer", p.ID, "err", err)
	}
	ss, dc := s.pool.reuse(ctx, p.Fingerprint)
	reused := ss != nil
	if !reused {
		if ss, dc, err = s.dial(ctx, p); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			ss.Close()
		} else {
			s.pool.keep(p.Fingerprint, ss, dc, s.settings().ConnectionIdle)
		}
	}()
	res := &SendResult{Peer: p.Name, Name: name, ConnectMS: msSince(start), Reused: reused, Path: PathWebRTC}
	ctx, cancel := ss.Bind(ctx) // a receiver that vanishes ends the send
	defer cancel()
	if kind == "text" {
		if err := rtc.SendText(ctx, dc, string(text)); err != nil {
			return nil, err
		}
		res.Bytes = int64(len(text))
	} else {
		sent, err := rtc.SendFile(ctx, dc, offerOf(name, size), body, nil)
		if err != nil {
			return nil, err
		}
		res.SHA256, res.ResumedBytes, res.Bytes = sent.SHA256, sent.Resumed, size
	}
	res.DurationMS = msSince(start)
	_, res.Pair = ss.Events()
	s.log.Info("sent", "peer", p.ID, "name", p.Name, "kind", kind, "bytes", res.Bytes, "resumed_from", res.ResumedBytes, "reused", reused, "connect_ms", res.ConnectMS, "duration_ms", res.DurationMS, "pair", res.Pair)
	return res, nil
}

// offerOf is the offer of a file at the relative path rel: its base
// name for receivers that know no folders, and the path.
func offerOf(rel string, size int64) rtc.Offer {
	o := rtc.Offer{Name: path.Base(rel), Size: size}
	if o.Name != rel {
		o.Path = rel
	}
	return o
}

// addrsOf is where p may be: the stored addresses (a pinned connection
// confirmed them) and what beacons say now, which anyone on the LAN can
// spoof. Both paths try them all at once, pinned, so a spoofed goodbye or
// announce never keeps us from the stored ones and black holes cost no
// time.
func addrsOf(cfg Config, p pairing.PairedPeer) []netip.AddrPort {
	var addrs []netip.AddrPort
	if p.Port != 0 {
		for _, a := range p.Addresses {
			addrs = append(addrs, netip.AddrPortFrom(a, p.Port))
		}
	}
	if cfg.Lookup != nil {
		for _, ap := range cfg.Lookup(p.Fingerprint) {
			if !slices.Contains(addrs, ap) {
				addrs = append(addrs, ap)
			}
		}
	}
	if len(addrs) > maxDial {
		addrs = addrs[:maxDial]
	}
	return addrs
}

// dial opens a new connection to p, up to its open data channel.
func (s *Sessions) dial(ctx context.Context, p pairing.PairedPeer) (*rtc.Session, *webrtc.DataChannel, error) {
	addrs := addrsOf(s.cfg, p)
	if len(addrs) == 0 {
		return nil, nil, fmt.Errorf("%s is not on the LAN and has no known address", p.Name)
	}
	ss, offer, err := s.endpoint(false).Offer(ctx, p.Fingerprint)
	if err != nil {
		return nil, nil, err
	}
	s.recent.add(ss)
	answer, err := pairing.Signal(ctx, s.cfg.Identity, p.Fingerprint, addrs, offer)
	if err == nil {
		err = ss.Finish(answer)
	}
	var dc *webrtc.DataChannel
	if err == nil {
		dc, err = ss.Channel(ctx)
	}
	if err != nil {
		ss.Close()
		return nil, nil, err
	}
	return ss, dc, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
