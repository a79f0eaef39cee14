package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/pionlog"
)

// sctpReceiveBuffer is the SCTP receive window: what the peer may have in
// flight to us. It must fit in the buffer pion keeps between the socket
// and DTLS (1,000,000 bytes, not configurable: webrtc/internal/mux), or a
// burst overflows it and pion drops packets ("mux: endpoint buffer is
// full"), each drop halving the sender's congestion window. 768 KiB of
// payload is about 830 KB on the wire; it is still 6 times a gigabit
// LAN's bandwidth-delay product, and 120 Mbit/s at 50 ms over TURN.
const sctpReceiveBuffer = 768 << 10

// ICE liveness: keep-alives every 2 s; no packet for 4 s is
// "disconnected", and 6 s more is "failed".
const (
	iceKeepAlive    = 2 * time.Second
	iceDisconnected = 4 * time.Second
	iceFailed       = 6 * time.Second
)

// maxEvents bounds the events a session keeps for status.
const maxEvents = 64

// Config configures an Endpoint.
type Config struct {
	Certificate webrtc.Certificate
	ICEServers  []webrtc.ICEServer
	// RelayOnly uses TURN relays only (ICE transport policy relay).
	RelayOnly bool
	// Loopback allows loopback candidates (tests on one host).
	Loopback bool
	// MDNSQuery resolves the peer's .local host candidates (browsers hide
	// their addresses behind them); daemons use plain addresses.
	MDNSQuery bool
	// Allow, when set, is where packets to the peer may go (our links):
	// every packet pion would send elsewhere is dropped, whatever form the
	// candidate had (see guard). The configured STUN and TURN servers, and
	// loopback with Loopback, are always allowed.
	Allow  func(netip.Addr) bool
	Logger *slog.Logger
}

// Endpoint makes WebRTC sessions with the device's identity.
type Endpoint struct {
	cfg   Config
	api   *webrtc.API
	guard *guard
	err   error // no guarded network: no session (never an unguarded one)
}

// Dropped is how many packets the endpoint's guard dropped (0 without
// Config.Allow).
func (e *Endpoint) Dropped() int64 {
	if e.guard == nil {
		return 0
	}
	return e.guard.dropped.Load()
}

// NewEndpoint prepares the pion API: identity certificate, pion logs into
// slog, plain host candidates (daemons need no mDNS names).
func NewEndpoint(cfg Config) *Endpoint {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Logger: cfg.Logger}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.MDNSQuery {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeQueryOnly)
	}
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	// A peer that went silent fails the connection after 10 s instead of
	// pion's 30 s: a send to a vanished device ends with an error soon.
	se.SetICETimeouts(iceDisconnected, iceFailed, iceKeepAlive)
	// A smaller SCTP receive window than pion's 1 MiB: see
	// sctpReceiveBuffer.
	se.SetSCTPMaxReceiveBufferSize(sctpReceiveBuffer)
	// ICE over UDP only: no daemon offers TCP candidates, and pion's
	// active ICE-TCP dials a peer's passive candidate with the standard
	// dialer, past the Net and its guard.
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.DisableActiveTCP(true)
	var g *guard
	if cfg.Allow != nil {
		g = newGuard(cfg.Allow, cfg.Loopback, cfg.Logger)
	}
	n, err := newNet(cfg.Logger, g)
	if err == nil {
		se.SetNet(n)
	} else if g == nil {
		err = nil // pion's own network, without bigger buffers
	}
	if cfg.RelayOnly {
		se.SetRelayAcceptanceMinWait(0) // relay is the only choice: take it at once
	}
	return &Endpoint{cfg: cfg, api: webrtc.NewAPI(webrtc.WithSettingEngine(se)), guard: g, err: err}
}

// Event is one step of a session's connection sequence.
type Event struct {
	AtMS  float64 `json:"at_ms"` // since the session began
	What  string  `json:"what"`  // e.g. "ice: checking", "dtls: connected"
	State string  `json:"state"`
}

// Session is one WebRTC connection to a paired device.
type Session struct {
	Peer  ident.Fingerprint
	Role  string // "offer" or "answer"
	start time.Time
	pc    *webrtc.PeerConnection
	log   *slog.Logger

	mu     sync.Mutex
	events []Event
	pair   string
	dc     *webrtc.DataChannel
	closed chan struct{}
	once   sync.Once

	ch channelClaim
}

// channelClaim is the session's one data channel: claimed by the first,
// any later one is closed (extra counts them).
type channelClaim struct {
	open     chan struct{} // closed when the channel opened
	claimed  atomic.Bool
	openOnce sync.Once
	extra    atomic.Int64
}

// claimChannel reports whether dc is the session's first data channel.
func (s *Session) claimChannel() bool { return s.ch.claimed.CompareAndSwap(false, true) }

// ExtraChannels is how many data channels beyond the first the peer
// opened (each was closed at once).
func (s *Session) ExtraChannels() int64 { return s.ch.extra.Load() }

func (e *Endpoint) newSession(peer ident.Fingerprint, role string) (*Session, error) {
	if e.err != nil {
		return nil, e.err
	}
	conf := webrtc.Configuration{Certificates: []webrtc.Certificate{e.cfg.Certificate}, ICEServers: e.cfg.ICEServers}
	if e.cfg.RelayOnly {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := e.api.NewPeerConnection(conf)
	if err != nil {
		return nil, err
	}
	s := &Session{Peer: peer, Role: role, start: time.Now(), pc: pc, ch: channelClaim{open: make(chan struct{})}, closed: make(chan struct{}),
		log: e.cfg.Logger.With("peer", peer.ID(), "role", role)}
	pc.OnSignalingStateChange(func(st webrtc.SignalingState) { s.event("signaling", st.String()) })
	pc.OnICEGatheringStateChange(func(st webrtc.ICEGatheringState) { s.event("ice gathering", st.String()) })
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) { s.event("ice", st.String()) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.event("connection", st.String())
		if st == webrtc.PeerConnectionStateConnected {
			// Not inside the DTLS callback: that deadlocks in pion.
			go s.recordPair()
		}
		if st == webrtc.PeerConnectionStateFailed {
			// The connection's one line at info (the steps are at debug).
			s.log.Info("webrtc: connection failed", "after_ms", float64(time.Since(s.start).Microseconds())/1000)
		}
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.once.Do(func() { close(s.closed) })
		}
	})
	if dt := pc.SCTP().Transport(); dt != nil {
		dt.OnStateChange(func(st webrtc.DTLSTransportState) { s.event("dtls", st.String()) })
	}
	return s, nil
}

func (s *Session) event(what, state string) {
	ms := float64(time.Since(s.start).Microseconds()) / 1000
	s.mu.Lock()
	if len(s.events) >= maxEvents {
		// A peer can flap ICE for as long as it likes: keep the first
		// events (how it came up) and the latest ones.
		s.events = slices.Delete(s.events, maxEvents/2, maxEvents/2+1)
	}
	s.events = append(s.events, Event{AtMS: ms, What: what, State: state})
	s.mu.Unlock()
	s.log.Debug("webrtc: "+what, "state", state, "at_ms", ms)
}

func (s *Session) recordPair() {
	sctp := s.pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return
	}
	p, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || p == nil {
		return
	}
	desc := fmt.Sprintf("%s %s:%d ↔ %s %s:%d (%s)", p.Local.Typ, p.Local.Address, p.Local.Port, p.Remote.Typ, p.Remote.Address, p.Remote.Port, p.Local.Protocol)
	s.mu.Lock()
	s.pair = desc
	s.mu.Unlock()
	// The connection's one line at info (the steps are at debug).
	s.log.Info("webrtc: connected", "pair", desc, "after_ms", float64(time.Since(s.start).Microseconds())/1000)
}

// Events returns the connection sequence so far and the selected pair.
func (s *Session) Events() ([]Event, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...), s.pair
}

// Channel waits until the data channel is open.
func (s *Session) Channel(ctx context.Context) (*webrtc.DataChannel, error) {
	select {
	case <-s.ch.open:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.dc, nil
	case <-s.closed:
		return nil, errors.New("the connection failed before the data channel opened (network blocks it? run 'pairing diag')")
	case <-ctx.Done():
		return nil, fmt.Errorf("data channel not open: %w", ctx.Err())
	}
}

func (s *Session) setChannel(dc *webrtc.DataChannel) {
	dc.OnOpen(func() {
		s.mu.Lock()
		s.dc = dc
		s.mu.Unlock()
		s.event("data channel", "open")
		s.ch.openOnce.Do(func() { close(s.ch.open) })
	})
}

// Done is closed when the connection failed or was closed.
func (s *Session) Done() <-chan struct{} { return s.closed }

// ErrConnectionLost ends what was under way on a connection that failed
// or closed.
var ErrConnectionLost = errors.New("the connection to the device was lost")

// Bind returns a context that also ends, with ErrConnectionLost as its
// cause, when the connection fails or closes.
func (s *Session) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-s.closed:
			cancel(ErrConnectionLost)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// messages counts the data-channel messages sent and received so far.
func (s *Session) messages() uint64 {
	var n uint64
	for _, st := range s.pc.GetStats() {
		if d, ok := st.(webrtc.DataChannelStats); ok {
			n += uint64(d.MessagesSent) + uint64(d.MessagesReceived)
		}
	}
	return n
}

// WaitIdle returns when the connection closed, ctx ended, or no
// data-channel message went either way for idle. It reports whether the
// connection went idle.
func (s *Session) WaitIdle(ctx context.Context, idle time.Duration) bool {
	t := time.NewTicker(max(idle/4, 50*time.Millisecond))
	defer t.Stop()
	last, since := s.messages(), time.Now()
	for {
		select {
		case <-s.closed:
			return false
		case <-ctx.Done():
			return false
		case <-t.C:
			if n := s.messages(); n != last {
				last, since = n, time.Now()
			} else if time.Since(since) >= idle {
				return true
			}
		}
	}
}

// Close closes the connection. It is safe to call twice.
func (s *Session) Close() error {
	err := s.pc.Close()
	s.once.Do(func() { close(s.closed) })
	return err
}

// gather applies desc locally and waits until ICE gathering completes
// (non-trickle signalling), returning the full local description.
func (s *Session) gather(ctx context.Context, desc webrtc.SessionDescription) (string, error) {
	done := webrtc.GatheringCompletePromise(s.pc) // before SetLocalDescription
	if err := s.pc.SetLocalDescription(desc); err != nil {
		return "", err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("ICE gathering: %w", ctx.Err())
	}
	return s.pc.LocalDescription().SDP, nil
}

// Offer starts a session to peer: a data channel and a complete offer.
func (e *Endpoint) Offer(ctx context.Context, peer ident.Fingerprint) (*Session, string, error) {
	s, err := e.newSession(peer, "offer")
	if err != nil {
		return nil, "", err
	}
	dc, err := s.pc.CreateDataChannel("pairing", nil)
	if err != nil {
		s.Close()
		return nil, "", err
	}
	s.claimChannel()
	s.setChannel(dc)
	offer, err := s.pc.CreateOffer(nil)
	if err == nil {
		var sdp string
		if sdp, err = s.gather(ctx, offer); err == nil {
			if e.cfg.RelayOnly && !strings.Contains(sdp, " typ relay") {
				err = ErrNoRelay
			} else {
				return s, sdp, nil
			}
		}
	}
	s.Close()
	return nil, "", err
}

// ErrNoRelay means relay-only mode gathered no TURN relay candidate.
var ErrNoRelay = errors.New("no TURN relay candidate: the TURN server refused the credentials (turn-user, turn-password or turn-secret) or cannot be reached")

// Finish applies the peer's answer, after checking that its fingerprint
// is the peer's.
func (s *Session) Finish(answer string) error {
	if err := AuthorizeAnswer(answer, s.Peer); err != nil {
		return err
	}
	return s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

// Answer accepts an offer that Authorize has already approved and returns
// the session and the complete answer. onChannel gets the peer's data
// channel as soon as it exists, before any message can arrive: set its
// handlers there (later, a message could find none and be lost).
func (e *Endpoint) Answer(ctx context.Context, offer string, peer ident.Fingerprint, onChannel func(*webrtc.DataChannel)) (*Session, string, error) {
	s, err := e.newSession(peer, "answer")
	if err != nil {
		return nil, "", err
	}
	s.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		// One data channel per connection. A peer that opens more (never
		// paired, paired, or a web page in its browser) has them closed at
		// once: each would cost memory, and none has a use.
		if !s.claimChannel() {
			s.ch.extra.Add(1)
			s.log.Debug("webrtc: extra data channel closed", "label", dc.Label())
			dc.Close()
			return
		}
		if onChannel != nil {
			onChannel(dc)
		}
		s.setChannel(dc)
	})
	err = s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer})
	if err == nil {
		var ans webrtc.SessionDescription
		if ans, err = s.pc.CreateAnswer(nil); err == nil {
			var sdp string
			if sdp, err = s.gather(ctx, ans); err == nil {
				return s, sdp, nil
			}
		}
	}
	s.Close()
	return nil, "", err
}
