package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/ident"
)

// Server is the pairing listener: one TCP port, TLS 1.3 for native
// clients and plain HTTP (self-ping, later the browser page), told apart
// by the first byte.
type Server struct {
	Identity *Identity
	Window   *Window
	Store    *Store
	// Name returns this device's name (it may change on a config reload).
	Name func() string
	// Plain handles plain-HTTP requests (mux of the caller).
	Plain http.Handler
	// TLS handles the other TLS endpoints (connect, transfer: the
	// sessions'); a request there carries a client certificate or none.
	TLS http.Handler
	// Self returns this device's confirmed addresses, for answers.
	Self   func() []netip.Addr
	Logger *slog.Logger
	// Hooks are how the other parts answer what peers tell and ask.
	Hooks ServerHooks

	demux *demux
	srvs  []*http.Server // TLS and plain
	wg    sync.WaitGroup
}

// ServerHooks are the Server's calls into the other parts; nil ones are
// not called (observations are taken, probes refused).
type ServerHooks struct {
	// OnObserved is called when a peer says where it sees us; an error
	// refuses the observation (403).
	OnObserved func(addr netip.Addr, by ident.Fingerprint) error
	// OnProbe answers a reverse probe request from by (its client
	// certificate), which came from remote to our local address; an
	// error refuses it (403).
	OnProbe func(ctx context.Context, req *ProbeRequest, by ident.Fingerprint, local, remote netip.Addr) (*ProbeResponse, error)
	// OnRequest is called for every request, TLS and plain: the proof
	// that another host reached the address it arrived on.
	OnRequest func(Arrival)
}

// Arrival is a request from another host, as evidence about the local
// address it arrived on.
type Arrival struct {
	Local, Remote netip.Addr
	// Peer is the client certificate's fingerprint (zero without one).
	Peer ident.Fingerprint
	// By is the device ID, or the remote address of a host without a
	// certificate; Via is what it asked for ("tls /v1/pair").
	By, Via string
	// Trust is discovery's TrustPaired (a paired device's key),
	// TrustPairing (a pairing that succeeded, a browser's offer that was
	// answered) or TrustStranger.
	Trust string
}

// Serve starts serving ln in the background.
func (s *Server) Serve(ln net.Listener) {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.demux = newDemux(ln, s.Logger)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathPair, s.handlePair)
	mux.HandleFunc("POST "+PathObserved, s.handleObserved)
	mux.HandleFunc("POST "+PathProbe, s.handleProbe)
	if s.TLS != nil {
		mux.Handle("/", s.TLS)
	}
	tlsSrv := NewHTTPServer(s.record(mux, "tls"), s.Logger)
	tlsSrv.TLSConfig = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.Identity.TLSCertificate()},
		// Requested and recorded, not CA-verified: identity is the
		// fingerprint, checked against the window or the paired store.
		ClientAuth: tls.RequestClientCert,
	}
	plain := s.Plain
	if plain == nil {
		plain = http.NotFoundHandler()
	}
	plainSrv := NewHTTPServer(s.record(plain, "http"), s.Logger)
	s.srvs = []*http.Server{tlsSrv, plainSrv}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); tlsSrv.ServeTLS(s.demux.tls, "", "") }()
	go func() { defer s.wg.Done(); plainSrv.Serve(s.demux.plain) }()
}

// Port is the listener's TCP port (0 before Serve; Serve happens before
// any concurrent call).
func (s *Server) Port() int {
	if s.demux == nil {
		return 0
	}
	return s.demux.ln.Addr().(*net.TCPAddr).Port
}

// Close stops the listener and waits (at most until ctx ends) for
// requests in flight. It is safe to call twice.
func (s *Server) Close(ctx context.Context) {
	if s.demux == nil {
		return
	}
	s.demux.close()
	for _, srv := range s.srvs {
		srv.Shutdown(ctx)
	}
	s.wg.Wait()
}

// NewHTTPServer is an HTTP server with the listener's bounds: request
// size, header and body deadlines, idle timeout.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           limitBodies(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

func (s *Server) handlePair(w http.ResponseWriter, r *http.Request) {
	src := RemoteIP(r)
	fail := func(err error) {
		reason, status := Reason(err)
		s.Logger.Warn("pairing failed", "from", src, "reason", reason, "err", err)
		WriteJSON(w, status, ErrorResponse{Error: err.Error(), Reason: reason})
	}
	if len(r.TLS.PeerCertificates) == 0 {
		fail(errors.New("malformed pairing request: no client certificate"))
		return
	}
	clientFP := ident.Of(r.TLS.PeerCertificates[0].Raw)
	if clientFP == s.Identity.Fingerprint {
		fail(ErrSelf) // as Accept would, but before the body is read
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail(ErrBadRequest)
		return
	}
	req, err := decodePairRequest(body)
	if err != nil {
		fail(err)
		return
	}
	ekm, err := r.TLS.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		fail(err)
		return
	}
	key := []byte(req.Code)
	_, err = s.accepter().Accept(Attempt{
		Peer: PairedPeer{Fingerprint: clientFP, Name: req.Name, Kind: req.Kind,
			Addresses: []netip.Addr{RemoteIPZoned(r)}, Port: req.Port},
		Code: req.Code,
		Proof: func(secret []byte) bool {
			key = slices.Clone(secret)
			return hmacEqual(req.Proof, mac(secret, clientLabel, ekm))
		},
	})
	if errors.Is(err, ErrNotStored) {
		WriteJSON(w, http.StatusInternalServerError, ErrorResponse{Error: err.Error(), Reason: "internal"})
		return
	}
	if err != nil { // Accept logged it
		reason, status := Reason(err)
		WriteJSON(w, status, ErrorResponse{Error: err.Error(), Reason: reason})
		return
	}
	WriteJSON(w, http.StatusOK, PairResponse{Proof: mac(key, serverLabel, ekm), Peer: s.info()})
}

// accepter accepts the native pairings.
func (s *Server) accepter() *Accepter {
	return &Accepter{Self: s.Identity.Fingerprint, Window: s.Window, Store: s.Store, Logger: s.Logger}
}

func (s *Server) handleObserved(w http.ResponseWriter, r *http.Request) {
	var req ObservedRequest
	body, err := io.ReadAll(r.Body)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	if err != nil || !req.Addr.IsValid() || len(r.TLS.PeerCertificates) == 0 {
		WriteJSON(w, http.StatusBadRequest, ErrorResponse{Error: "want {\"addr\": IP} and a client certificate", Reason: "bad_request"})
		return
	}
	if s.Hooks.OnObserved != nil {
		if err := s.Hooks.OnObserved(req.Addr, ident.Of(r.TLS.PeerCertificates[0].Raw)); err != nil {
			s.Logger.Debug("observed: refused", "from", RemoteIP(r), "addr", req.Addr, "err", err)
			WriteJSON(w, http.StatusForbidden, ErrorResponse{Error: err.Error(), Reason: "refused"})
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) handleProbe(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req *ProbeRequest
	if err == nil {
		req, err = DecodeProbeRequest(body)
	}
	if err != nil || len(r.TLS.PeerCertificates) == 0 {
		WriteJSON(w, http.StatusBadRequest, ErrorResponse{Error: "want {\"targets\": [{\"addr\", \"nonce\"}…]} and a client certificate", Reason: "bad_request"})
		return
	}
	if s.Hooks.OnProbe == nil {
		WriteJSON(w, http.StatusNotFound, ErrorResponse{Error: "no reverse probes here", Reason: "refused"})
		return
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	var localIP netip.Addr
	if local != nil {
		localIP = local.AddrPort().Addr().Unmap()
	}
	resp, err := s.Hooks.OnProbe(r.Context(), req, ident.Of(r.TLS.PeerCertificates[0].Raw), localIP, RemoteIPZoned(r))
	if err != nil {
		s.Logger.Debug("probe: refused", "from", RemoteIP(r), "err", err)
		WriteJSON(w, http.StatusForbidden, ErrorResponse{Error: err.Error(), Reason: "refused"})
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}

// record calls OnRequest for every request h gets.
func (s *Server) record(h http.Handler, scheme string) http.Handler {
	if s.Hooks.OnRequest == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		remote, err := netip.ParseAddrPort(r.RemoteAddr)
		tcp, ok := local.(*net.TCPAddr)
		if !ok || err != nil {
			h.ServeHTTP(w, r)
			return
		}
		a := Arrival{Local: tcp.AddrPort().Addr(), Remote: remote.Addr(), By: remote.Addr().Unmap().String(),
			Via: scheme + " " + safePath(r.URL.Path), Trust: discovery.TrustStranger}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			a.Peer = ident.Of(r.TLS.PeerCertificates[0].Raw)
			a.By = a.Peer.ID()
			if _, paired := s.Store.Get(a.Peer); paired {
				a.Trust = discovery.TrustPaired
			}
		}
		// A pairing, or a browser's offer, counts once it succeeded.
		pairs := r.Method == http.MethodPost && (r.TLS != nil && r.URL.Path == PathPair || r.TLS == nil && r.URL.Path == PathOffer)
		if !pairs || a.Trust == discovery.TrustPaired {
			s.Hooks.OnRequest(a)
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == http.StatusOK {
			a.Trust = discovery.TrustPairing
		}
		s.Hooks.OnRequest(a)
	})
}

// PathOffer is where the page posts its WebRTC offer (plain HTTP).
const PathOffer = "/p/offer"

// statusWriter notes the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// safePath is p when it is short and plain, for a record a stranger's
// request may fill.
func safePath(p string) string {
	if len(p) > 24 {
		return "(other)"
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '/' || c == '-' || c == '_' || c == '.') {
			return "(other)"
		}
	}
	return p
}

// limitBodies bounds every request body to MaxRequestBody, but a
// transfer's (its handler checks the announced size against the inbox)
// and a page's bulk chunk's (its handler reads one chunk at most).
func limitBodies(h http.Handler) http.Handler {
	limited := http.MaxBytesHandler(h, MaxRequestBody)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathTransfer || strings.HasPrefix(r.URL.Path, PathBulk) {
			h.ServeHTTP(w, r)
			return
		}
		limited.ServeHTTP(w, r)
	})
}

func (s *Server) info() PeerInfo {
	var addrs []netip.Addr
	if s.Self != nil {
		addrs = s.Self()
	}
	return PeerInfo{ID: s.Identity.ID(), Name: s.Name(), Fingerprint: s.Identity.Fingerprint.String(), Addresses: addrs}
}

// RemoteIP is the address a request came from, without zone.
func RemoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// RemoteIPZoned is the address a request came from, with the receiving
// interface as zone when it is link-local (the zone this host dials it
// with).
func RemoteIPZoned(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if !a.IsLinkLocalUnicast() {
		a = a.WithZone("")
	}
	return a
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
