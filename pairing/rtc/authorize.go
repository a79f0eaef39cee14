// Package rtc holds the WebRTC pieces of pairing: the device identity as
// DTLS certificate, and the fingerprint authorization of remote SDP.
package rtc

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
)

// Authorization errors.
var (
	ErrSDP            = errors.New("malformed SDP")
	ErrNoFingerprint  = errors.New("SDP carries no sha-256 fingerprint")
	ErrMixed          = errors.New("SDP carries different fingerprints (session and media levels differ)")
	ErrNotTLSPeer     = errors.New("SDP fingerprint is not the certificate the request came with")
	ErrNotPaired      = errors.New("SDP fingerprint is not a paired device")
	ErrNotExpected    = errors.New("answer fingerprint is not the device we called")
	maxSDPSize        = 64 << 10
	fingerprintPrefix = "sha-256 "
)

// Certificate is the identity key and certificate as pion's DTLS
// certificate, so the SDP fingerprint is the device fingerprint (unlike
// webrtc.GenerateCertificate, which makes a new, month-long one).
func Certificate(key *ecdsa.PrivateKey, cert *x509.Certificate) webrtc.Certificate {
	return webrtc.CertificateFromX509(key, cert)
}

// Fingerprints returns every a=fingerprint of an SDP, session level first,
// then each media section's. A fingerprint with another hash than sha-256
// is an error: a device's identity is its SHA-256.
func Fingerprints(text string) ([]ident.Fingerprint, error) {
	if len(text) > maxSDPSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrSDP, len(text), maxSDPSize)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSDP, err)
	}
	var out []ident.Fingerprint
	add := func(attrs []sdp.Attribute) error {
		for _, a := range attrs {
			if a.Key != "fingerprint" {
				continue
			}
			v := strings.TrimSpace(a.Value)
			if !strings.HasPrefix(strings.ToLower(v), fingerprintPrefix) {
				return fmt.Errorf("%w: fingerprint %q is not sha-256", ErrSDP, v)
			}
			fp, err := ident.Parse(strings.TrimSpace(v[len(fingerprintPrefix):]))
			if err != nil {
				return fmt.Errorf("%w: %v", ErrSDP, err)
			}
			out = append(out, fp)
		}
		return nil
	}
	if err := add(sd.Attributes); err != nil {
		return nil, err
	}
	for _, m := range sd.MediaDescriptions {
		if err := add(m.Attributes); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Authorize checks a remote offer before SetRemoteDescription: every
// fingerprint in it (session and media level) is one and the same, equal
// to tlsPeer (the client certificate of the signalling request; zero when
// it came another way), and a paired device. It returns that fingerprint.
func Authorize(text string, tlsPeer ident.Fingerprint, paired func(ident.Fingerprint) bool) (ident.Fingerprint, error) {
	fp, err := single(text)
	if err != nil {
		return fp, err
	}
	if !tlsPeer.IsZero() && fp != tlsPeer {
		return fp, fmt.Errorf("%w: SDP %s, TLS %s", ErrNotTLSPeer, fp.ID(), tlsPeer.ID())
	}
	if !paired(fp) {
		return fp, fmt.Errorf("%w: %s", ErrNotPaired, fp.ID())
	}
	return fp, nil
}

// AuthorizeAnswer checks an answer: its fingerprints are all want's.
func AuthorizeAnswer(text string, want ident.Fingerprint) error {
	fp, err := single(text)
	if err != nil {
		return err
	}
	if fp != want {
		return fmt.Errorf("%w: got %s, want %s", ErrNotExpected, fp.ID(), want.ID())
	}
	return nil
}

// RemoteFingerprint is the one fingerprint an SDP carries (all its
// a=fingerprint lines must agree).
func RemoteFingerprint(text string) (ident.Fingerprint, error) { return single(text) }

func single(text string) (ident.Fingerprint, error) {
	fps, err := Fingerprints(text)
	if err != nil {
		return ident.Fingerprint{}, err
	}
	if len(fps) == 0 {
		return ident.Fingerprint{}, ErrNoFingerprint
	}
	for _, f := range fps[1:] {
		if f != fps[0] {
			return fps[0], fmt.Errorf("%w: %s and %s", ErrMixed, fps[0].ID(), f.ID())
		}
	}
	return fps[0], nil
}

// MaxRemoteCandidates bounds the ICE candidates taken from a stranger's
// offer: a browser on a LAN lists a handful.
const MaxRemoteCandidates = 8

// FilterCandidates drops the a=candidate lines of sdp whose address allow
// refuses, and every one past max, so that an offer cannot make us send
// connectivity checks to hosts of its choosing. It returns the new SDP and
// how many it dropped. A .local name is kept: only mDNS resolves it, to
// whatever address the peer's responder says, so the check of where
// packets go is the endpoint's send guard (Config.Allow), which sees every
// destination after resolution.
func FilterCandidates(sdp string, allow func(netip.Addr) bool, max int) (string, int) {
	lines := strings.SplitAfter(sdp, "\n")
	out := make([]string, 0, len(lines))
	kept, dropped := 0, 0
	for _, l := range lines {
		body := strings.TrimRight(l, "\r\n")
		if !strings.HasPrefix(body, "a=candidate:") {
			out = append(out, l)
			continue
		}
		// candidate:foundation component transport priority address port typ …
		f := strings.Fields(strings.TrimPrefix(body, "a="))
		ok := len(f) >= 8 && kept < max
		if ok && !strings.HasSuffix(f[4], ".local") {
			a, err := netip.ParseAddr(f[4])
			ok = err == nil && allow(a)
		}
		if !ok {
			dropped++
			continue
		}
		kept++
		out = append(out, l)
	}
	return strings.Join(out, ""), dropped
}
