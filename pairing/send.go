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
	// idleClose closes an incoming session nothing happened on.
	idleClose = 2 * time.Minute
	// signalTimeout bounds one signalling call to one address.
	signalTimeout = 3 * time.Second
)

func (d *Daemon) peerName(fp ident.Fingerprint) string {
	p, _ := d.store.Get(fp)
	return p.Name
}

// endpoint makes the WebRTC endpoint with the configured ICE servers
// (TURN REST credentials minted fresh for each session); for a browser it
// resolves the .local names its host candidates hide behind.
func (d *Daemon) endpoint(browser bool) *rtc.Endpoint {
	var servers []webrtc.ICEServer
	for _, u := range d.cfg.STUN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}})
	}
	user, pass := d.cfg.TURNUser, d.cfg.TURNPassword
	if d.cfg.TURNSecret != "" {
		user, pass = turncred.Mint(d.cfg.TURNSecret, orDefault(d.cfg.TURNUser, "pairing"), 24*time.Hour, time.Now())
	}
	for _, u := range d.cfg.TURN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}, Username: user, Credential: pass})
	}
	return rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(d.id.Key, d.id.Cert), ICEServers: servers, RelayOnly: d.cfg.RelayOnly,
		MDNSQuery: browser, Logger: d.log})
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
	for _, s := range ss {
		s.Close()
	}
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
		select {
		case <-s.Done():
		case <-ctx.Done():
		case <-time.After(idleClose):
		}
		s.Close()
	})
	return answer, nil
}

// Send delivers a text (kind "text", body the text) or a file (kind
// "file", body its size bytes) to the paired device query names, over a
// new WebRTC session: found by the peer table first, then its last
// addresses.
func (d *Daemon) Send(ctx context.Context, query, kind, name string, size int64, body io.Reader) (*control.SendResult, error) {
	start := time.Now()
	p, err := Resolve(d.store.List(), query)
	if err != nil {
		return nil, err
	}
	if p.Kind == KindBrowser {
		// A browser is reached through its open page, not a new connection.
		if kind != "text" {
			return nil, errors.New("a browser takes text messages only")
		}
		b, err := io.ReadAll(io.LimitReader(body, 32<<10))
		if err == nil {
			err = d.sendToPage(p.Fingerprint, string(b))
		}
		if err != nil {
			return nil, err
		}
		return &control.SendResult{Peer: p.Name, Bytes: int64(len(b)), DurationMS: msSince(start)}, nil
	}
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
		return nil, fmt.Errorf("%s is not on the LAN and has no known address", p.Name)
	}
	s, offer, err := d.endpoint(false).Offer(ctx, p.Fingerprint)
	if err != nil {
		return nil, err
	}
	d.track(s)
	defer s.Close()
	answer, err := d.signal(ctx, p.Fingerprint, addrs, offer)
	if err != nil {
		return nil, err
	}
	if err := s.Finish(answer); err != nil {
		return nil, err
	}
	dc, err := s.Channel(ctx)
	if err != nil {
		return nil, err
	}
	res := &control.SendResult{Peer: p.Name, Name: name, ConnectMS: msSince(start)}
	switch kind {
	case "text":
		b, err := io.ReadAll(io.LimitReader(body, 32<<10+1))
		if err != nil {
			return nil, err
		}
		if len(b) > 32<<10 {
			return nil, errors.New("a text message is at most 32 KiB; send a file instead")
		}
		if err := rtc.SendText(ctx, dc, string(b)); err != nil {
			return nil, err
		}
		res.Bytes = int64(len(b))
	case "file":
		if err := CheckFileName(name); err != nil {
			return nil, err
		}
		if res.SHA256, err = rtc.SendFile(ctx, dc, name, size, body, nil); err != nil {
			return nil, err
		}
		res.Bytes = size
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	res.DurationMS = msSince(start)
	_, res.Pair = s.Events()
	d.log.Info("sent", "peer", p.ID, "name", p.Name, "kind", kind, "bytes", res.Bytes, "connect_ms", res.ConnectMS, "duration_ms", res.DurationMS, "pair", res.Pair)
	return res, nil
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
