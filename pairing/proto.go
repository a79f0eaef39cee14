package pairing

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

// The native pairing exchange, over TLS 1.3 with both certificates:
//
//	POST /v1/pair  {"proof": HMAC-SHA256(secret, clientLabel ‖ exporter)
//	                 or "code": "123456", "name", "kind"}
//	200 {"proof": HMAC-SHA256(secret or code, serverLabel ‖ exporter), "peer": {…}}
//	4xx {"error": "…", "reason": "too_many_attempts|no_code|window_closed|wrong_secret|wrong_code|code_reused|too_many|bad_request"}
//
// exporter is 32 bytes of TLS keying material (RFC 8446 §7.5) with label
// exporterLabel: a proof is bound to its TLS session and useless in any
// other.
const (
	PathPair = "/v1/pair"
	// PathObserved: POST {"addr": "…"}, over TLS with the caller's
	// certificate: "I see you at this address". The receiver confirms it
	// with its own self-ping before using it.
	PathObserved = "/v1/observed"
	// PathProbe: POST {"targets": [{"addr", "nonce"}…]} over TLS with the
	// caller's certificate (a device in the receiver's peer table): "dial
	// these addresses of mine on my listener port, and say what
	// happened" (a reverse probe), answered {"results": [{"addr",
	// "result", "error"}…]}. Only the caller's announced port, only
	// addresses on the link the request came from, at most
	// discovery.MaxProbeTargets, rate-limited per source.
	PathProbe = "/v1/probe"
	// PathConnect: POST {"sdp": offer} over TLS with the caller's
	// certificate, answered {"sdp": answer}: WebRTC signalling between
	// paired devices (non-trickle).
	PathConnect = "/v1/connect"
	// PathTransfer: POST ?name=…&size=… over TLS with the caller's
	// certificate (a paired device), the file as the body (chunked, after
	// 100-continue), its SHA-256 in the trailer Sha256; answered
	// {"sha256": …} once the file is committed to the inbox, or an
	// ErrorResponse before the body when the name or size is refused.
	// Optional: &path=… (a folder's file) and &head=… (a resume, whose
	// offset the receiver's 100 carries): see HeaderOffset.
	PathTransfer = "/v1/transfer"
	// PathBulk: a page's bulk path, plain HTTP: GET and POST
	// PathBulk+"<id>/<i>", one sealed chunk of a file each (see
	// rtc.Bulk, which bounds the body to one chunk).
	PathBulk      = "/p/bulk/"
	exporterLabel = "EXPORTER-pairing-v1"
	clientLabel   = "pairing client proof v1"
	serverLabel   = "pairing server proof v1"
	// MaxRequestBody bounds every request body the listener reads (and
	// every message of a browser's data channel).
	MaxRequestBody = 16 << 10
)

// PairRequest is the client's half.
type PairRequest struct {
	Proof []byte `json:"proof,omitempty"`
	Code  string `json:"code,omitempty"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	// Port is the joining device's listener port, when a daemon runs
	// there: the device paired with stores it, to reach it later.
	Port uint16 `json:"port,omitempty"`
}

// PeerInfo describes the answering device in a PairResponse. Its JSON
// is wire format between daemons (pairing/daemon turns it into the
// control API's control.PeerInfo for `join` output).
type PeerInfo struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Fingerprint string       `json:"fingerprint"`
	Addresses   []netip.Addr `json:"addresses"`
	Port        uint16       `json:"port,omitempty"`
}

// PairResponse is the server's half.
type PairResponse struct {
	Proof []byte   `json:"proof"`
	Peer  PeerInfo `json:"peer"`
}

// ErrorResponse is the body of every refused listener request.
type ErrorResponse struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// ConnectMessage carries an offer or an answer.
type ConnectMessage struct {
	SDP string `json:"sdp"`
}

// ObservedRequest tells a peer where we see it.
type ObservedRequest struct {
	Addr netip.Addr `json:"addr"`
}

// ProbeRequest asks for a reverse probe.
type ProbeRequest struct {
	Targets []discovery.ProbeTarget `json:"targets"`
}

// ProbeResponse is what a reverse probe saw.
type ProbeResponse struct {
	Results []discovery.ProbeResult `json:"results"`
}

// DecodeProbeRequest parses and bounds a probe request body.
func DecodeProbeRequest(b []byte) (*ProbeRequest, error) {
	var r ProbeRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if len(r.Targets) == 0 || len(r.Targets) > discovery.MaxProbeTargets {
		return nil, fmt.Errorf("%w: 1 to %d targets", ErrBadRequest, discovery.MaxProbeTargets)
	}
	for _, t := range r.Targets {
		if !t.Addr.IsValid() || len(t.Nonce) != 32 || strings.Trim(t.Nonce, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%w: each target wants an addr and a nonce of 32 hex digits", ErrBadRequest)
		}
	}
	return &r, nil
}

// ErrBadRequest is a malformed pairing request.
var ErrBadRequest = errors.New("malformed pairing request")

// decodePairRequest parses and checks a request body.
func decodePairRequest(b []byte) (*PairRequest, error) {
	var r PairRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrBadRequest)
	}
	switch {
	case (r.Proof == nil) == (r.Code == ""):
		return nil, fmt.Errorf("%w: exactly one of proof and code", ErrBadRequest)
	case r.Proof != nil && len(r.Proof) != sha256.Size:
		return nil, fmt.Errorf("%w: proof is %d bytes", ErrBadRequest, len(r.Proof))
	case r.Code != "" && len(r.Code) != 6:
		return nil, fmt.Errorf("%w: code must be 6 digits", ErrBadRequest)
	case r.Kind != KindDevice && r.Kind != KindBrowser:
		return nil, fmt.Errorf("%w: kind %q", ErrBadRequest, r.Kind)
	}
	if err := beacon.ValidName(r.Name); err != nil {
		return nil, fmt.Errorf("%w: name: %v", ErrBadRequest, err)
	}
	return &r, nil
}

func mac(key []byte, label string, exporter []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(exporter)
	return m.Sum(nil)
}

// reasons maps pairing errors to wire reasons and back.
var reasons = []struct {
	err    error
	reason string
	status int
}{
	{ErrTooManyAttempts, "too_many_attempts", 403}, // before the errors it wraps
	{ErrNoCode, "no_code", 403},
	{ErrWindowClosed, "window_closed", 403},
	{ErrWrongSecret, "wrong_secret", 401},
	{ErrWrongCode, "wrong_code", 401},
	{ErrCodeReused, "code_reused", 401},
	{ErrTooMany, "too_many", 429},
	{ErrBadRequest, "bad_request", 400},
	{ErrSelf, "self", 409},
	// Met by the joining side only; they cross the control socket.
	{ErrImpostor, "impostor", 502},
	{ErrStalled, "stalled", 502},
	{ErrUnreachable, "unreachable", 502},
}

// KnownReason is err's reason when it is one of the pairing errors
// above, else "": what a caller across a boundary branches on.
func KnownReason(err error) string {
	for _, x := range reasons {
		if errors.Is(err, x.err) {
			return x.reason
		}
	}
	return ""
}

// Reason is the wire reason and HTTP status of a pairing error.
func Reason(err error) (reason string, status int) {
	for _, x := range reasons {
		if errors.Is(err, x.err) {
			return x.reason, x.status
		}
	}
	return "bad_request", 400
}

func hmacEqual(a, b []byte) bool { return hmac.Equal(a, b) }

// browserLabel starts the browser's proof (see package session for the
// exchange).
const browserLabel = "pairing browser proof v1"

// browserProof is HMAC-SHA256(secret, browserLabel ‖ daemon fingerprint
// ‖ browser fingerprint): what a page that scanned the QR code sends over
// its data channel. A relay that swapped either fingerprint makes it fail.
func browserProof(secret []byte, daemon, browser ident.Fingerprint) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(browserLabel))
	m.Write(daemon[:])
	m.Write(browser[:])
	return m.Sum(nil)
}

// CheckBrowserProof compares proof with browserProof in constant time.
func CheckBrowserProof(proof, secret []byte, daemon, browser ident.Fingerprint) bool {
	return hmac.Equal(proof, browserProof(secret, daemon, browser))
}
