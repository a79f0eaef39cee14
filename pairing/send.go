package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/turncred"
	"github.com/lanpairing/pairing/pairing/rtc"
)

const (
	// keepSessions is how many WebRTC sessions status remembers.
	keepSessions = 16
	// DefaultConnectionIdle is how long a sender keeps a connection with
	// nothing sent on it; the receiver closes it after twice that.
	DefaultConnectionIdle = time.Minute
	// signalTimeout bounds one signalling call to one address.
	signalTimeout = 3 * time.Second
	// maxText bounds a text message; larger ones go as files.
	maxText = 32 << 10
	// pingTimeout bounds the check that a kept connection still works: a
	// LAN answers in milliseconds.
	pingTimeout = time.Second
)

// kept is an open connection to a paired device, waiting for the next send.
type kept struct {
	s    *rtc.Session
	dc   *webrtc.DataChannel
	idle *time.Timer
}

// take removes the kept connection to fp from the pool, if there is one.
func (d *Daemon) take(fp ident.Fingerprint) *kept {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := d.kept[fp]
	if k != nil {
		delete(d.kept, fp)
		k.idle.Stop()
	}
	return k
}

// keep puts a connection that just served a send into the pool, where it
// closes after the idle time. A second one to the same device (two sends
// at once) is closed instead.
func (d *Daemon) keep(fp ident.Fingerprint, s *rtc.Session, dc *webrtc.DataChannel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing || d.kept[fp] != nil {
		go s.Close()
		return
	}
	k := &kept{s: s, dc: dc}
	idle := d.cfg.ConnectionIdle
	k.idle = time.AfterFunc(idle, func() {
		d.mu.Lock()
		mine := d.kept[fp] == k
		if mine {
			delete(d.kept, fp)
		}
		d.mu.Unlock()
		if mine {
			d.log.Info("webrtc: closing idle connection", "peer", fp.ID(), "idle", idle)
			s.Close()
		}
	})
	d.kept[fp] = k
}

// reuse returns the kept connection to fp when it still answers a ping.
func (d *Daemon) reuse(ctx context.Context, fp ident.Fingerprint) (*rtc.Session, *webrtc.DataChannel) {
	k := d.take(fp)
	if k == nil {
		return nil, nil
	}
	select {
	case <-k.s.Done():
		d.log.Info("webrtc: kept connection was closed; reconnecting", "peer", fp.ID())
	default:
		if k.dc.ReadyState() != webrtc.DataChannelStateOpen {
			d.log.Info("webrtc: kept connection was closed; reconnecting", "peer", fp.ID(), "channel", k.dc.ReadyState().String())
			break
		}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := rtc.Ping(pctx, k.dc)
		cancel()
		if err == nil {
			return k.s, k.dc
		}
		d.log.Info("webrtc: kept connection does not answer; reconnecting", "peer", fp.ID(), "err", err)
	}
	k.s.Close()
	return nil, nil
}

func (d *Daemon) peerName(fp ident.Fingerprint) string {
	p, _ := d.store.Get(fp)
	return p.Name
}

// endpoint makes the WebRTC endpoint with the configured ICE servers
// (TURN REST credentials minted fresh for each session); for a browser it
// resolves the .local names its host candidates hide behind.
func (d *Daemon) endpoint(browser bool) *rtc.Endpoint {
	d.mu.Lock()
	cfg := d.cfg // a config reload changes the WebRTC settings
	d.mu.Unlock()
	var servers []webrtc.ICEServer
	for _, u := range cfg.STUN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}})
	}
	user, pass := cfg.TURNUser, cfg.TURNPassword
	if cfg.TURNSecret != "" {
		user, pass = turncred.Mint(cfg.TURNSecret, orDefault(cfg.TURNUser, "pairing"), 24*time.Hour, time.Now())
	}
	for _, u := range cfg.TURN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}, Username: user, Credential: pass})
	}
	return rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(d.id.Key, d.id.Cert), ICEServers: servers, RelayOnly: cfg.RelayOnly,
		MDNSQuery: browser, Logger: d.log})
}

// connectionIdle is the live connection-idle setting.
func (d *Daemon) connectionIdle() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.ConnectionIdle
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// track remembers a session for status and closes it with the daemon.
func (d *Daemon) track(s *rtc.Session) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sessions = append(d.sessions, s)
	if len(d.sessions) > keepSessions {
		d.sessions[0].Close()
		d.sessions = d.sessions[1:]
	}
}

func (d *Daemon) connections() []control.Connection {
	d.mu.Lock()
	ss := slices.Clone(d.sessions)
	d.mu.Unlock()
	out := []control.Connection{}
	for _, s := range ss {
		ev, pair := s.Events()
		c := control.Connection{Peer: s.Peer.ID(), Role: s.Role, Pair: pair}
		for _, e := range ev {
			c.Events = append(c.Events, control.ConnEvent{AtMS: e.AtMS, What: e.What, State: e.State})
		}
		out = append(out, c)
	}
	return out
}

func (d *Daemon) closeSessions() {
	d.mu.Lock()
	ss := d.sessions
	d.sessions = nil
	d.mu.Unlock()
	for _, s := range append(ss, d.dropKept()...) {
		s.Close()
	}
}

// dropKept empties the pool of kept connections and returns them.
func (d *Daemon) dropKept() []*rtc.Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ss []*rtc.Session
	for fp, k := range d.kept {
		k.idle.Stop()
		ss = append(ss, k.s)
		delete(d.kept, fp)
	}
	return ss
}

// onConnect answers a paired device's offer. Before anything is set up,
// every fingerprint in the offer must be the TLS client's, and paired.
func (d *Daemon) onConnect(ctx context.Context, offer string, tlsPeer ident.Fingerprint, from netip.Addr) (string, error) {
	fp, err := rtc.Authorize(offer, tlsPeer, func(f ident.Fingerprint) bool { _, ok := d.store.Get(f); return ok })
	if err != nil {
		d.log.Warn("webrtc: connection refused", "from", from, "tls_peer", tlsPeer.ID(), "sdp_fingerprint", fp.ID(), "err", err)
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	s, answer, err := d.endpoint(false).Answer(ctx, offer, fp, func(dc *webrtc.DataChannel) {
		rtc.Serve(dc, fp, d.cfg.Inbox, d.log)
	})
	if err != nil {
		return "", err
	}
	d.track(s)
	d.goLoop(func(ctx context.Context) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := s.Channel(cctx)
		cancel()
		if err != nil {
			d.log.Info("webrtc: incoming connection did not open", "peer", fp.ID(), "err", err)
			s.Close()
			return
		}
		d.closeWhenIdle(ctx, s, 2*d.connectionIdle())
	})
	return answer, nil
}

// closeWhenIdle closes s when no message went over it for idle, or when
// the daemon stops.
func (d *Daemon) closeWhenIdle(ctx context.Context, s *rtc.Session, idle time.Duration) {
	if s.WaitIdle(ctx, idle) {
		d.log.Info("webrtc: closing idle connection", "peer", s.Peer.ID(), "idle", idle)
	}
	s.Close()
}

// Send delivers a text (kind "text", body the text) or a file (kind
// "file", body its size bytes) to the paired device query names. It uses
// the connection kept from the last send when that still answers, else a
// new one: the device found by the peer table first, then its last
// addresses. The connection is kept for the next send until it has been
// idle for Config.ConnectionIdle.
func (d *Daemon) Send(ctx context.Context, query, kind, name string, size int64, body io.Reader) (_ *control.SendResult, err error) {
	start := time.Now()
	p, err := Resolve(d.store.List(), query)
	if err != nil {
		return nil, err
	}
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
		if p.Kind == KindBrowser {
			return nil, errors.New("a browser takes text messages only")
		}
		if err := CheckFileName(name); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if p.Kind == KindBrowser {
		// A browser is reached through its open page, not a new connection.
		if err := d.sendToPage(p.Fingerprint, string(text)); err != nil {
			return nil, err
		}
		return &control.SendResult{Peer: p.Name, Bytes: int64(len(text)), DurationMS: msSince(start)}, nil
	}
	s, dc := d.reuse(ctx, p.Fingerprint)
	reused := s != nil
	if !reused {
		if s, dc, err = d.dial(ctx, p); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			s.Close()
		} else {
			d.keep(p.Fingerprint, s, dc)
		}
	}()
	res := &control.SendResult{Peer: p.Name, Name: name, ConnectMS: msSince(start), Reused: reused}
	ctx, cancel := s.Bind(ctx) // a receiver that vanishes ends the send
	defer cancel()
	if kind == "text" {
		if err := rtc.SendText(ctx, dc, string(text)); err != nil {
			return nil, err
		}
		res.Bytes = int64(len(text))
	} else {
		if res.SHA256, err = rtc.SendFile(ctx, dc, name, size, body, nil); err != nil {
			return nil, err
		}
		res.Bytes = size
	}
	res.DurationMS = msSince(start)
	_, res.Pair = s.Events()
	d.log.Info("sent", "peer", p.ID, "name", p.Name, "kind", kind, "bytes", res.Bytes, "reused", reused, "connect_ms", res.ConnectMS, "duration_ms", res.DurationMS, "pair", res.Pair)
	return res, nil
}

// dial opens a new connection to p, up to its open data channel.
func (d *Daemon) dial(ctx context.Context, p PairedPeer) (*rtc.Session, *webrtc.DataChannel, error) {
	var addrs []netip.AddrPort
	for _, tp := range d.table.Peers() {
		if tp.Fingerprint == p.Fingerprint {
			for _, a := range tp.Addresses {
				addrs = append(addrs, netip.AddrPortFrom(a, tp.Port))
			}
		}
	}
	for _, a := range p.Addresses {
		if ap := netip.AddrPortFrom(a, p.Port); p.Port != 0 && !slices.Contains(addrs, ap) {
			addrs = append(addrs, ap)
		}
	}
	if len(addrs) == 0 {
		return nil, nil, fmt.Errorf("%s is not on the LAN and has no known address", p.Name)
	}
	s, offer, err := d.endpoint(false).Offer(ctx, p.Fingerprint)
	if err != nil {
		return nil, nil, err
	}
	d.track(s)
	answer, err := d.signal(ctx, p.Fingerprint, addrs, offer)
	if err == nil {
		err = s.Finish(answer)
	}
	var dc *webrtc.DataChannel
	if err == nil {
		dc, err = s.Channel(ctx)
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, dc, nil
}

// signal POSTs the offer to the peer's connect endpoint (TLS pinned to its
// fingerprint, our certificate as client) at the first address that
// answers, and returns the answer.
func (d *Daemon) signal(ctx context.Context, fp ident.Fingerprint, addrs []netip.AddrPort, offer string) (string, error) {
	body, _ := json.Marshal(ConnectMessage{SDP: offer})
	var errs []error
	for _, a := range addrs {
		actx, cancel := context.WithTimeout(ctx, signalTimeout)
		tr := &http.Transport{Proxy: nil, DisableKeepAlives: true,
			DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				dl := tls.Dialer{Config: pinnedConfig(d.id, fp)}
				return dl.DialContext(ctx, "tcp", a.String())
			}}
		req, _ := http.NewRequestWithContext(actx, http.MethodPost, "https://peer"+PathConnect, bytes.NewReader(body))
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			cancel()
			errs = append(errs, fmt.Errorf("%s: %v", a, err))
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
		resp.Body.Close()
		cancel()
		tr.CloseIdleConnections()
		var m ConnectMessage
		if resp.StatusCode != http.StatusOK {
			var er errorResponse
			json.Unmarshal(b, &er)
			return "", fmt.Errorf("the device refused the connection: %s", orDefault(er.Error, resp.Status))
		}
		if err := json.Unmarshal(b, &m); err != nil || m.SDP == "" {
			return "", fmt.Errorf("bad answer from %s", a)
		}
		return m.SDP, nil
	}
	return "", fmt.Errorf("device unreachable: %w", errors.Join(errs...))
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
