package rtc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
)

// offerOf makes a real pion offer whose DTLS certificate is id's.
func offerOf(t *testing.T, id *testIdentity) string {
	t.Helper()
	// No mDNS: a test sends nothing outside loopback and its namespaces.
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{Certificate(id.Key, id.Cert)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel("x", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// testIdentity is a device identity as pairing makes it (rtc cannot
// import pairing, which imports rtc).
type testIdentity struct {
	Key         *ecdsa.PrivateKey
	Cert        *x509.Certificate
	Fingerprint ident.Fingerprint
}

func identity(t testing.TB) *testIdentity {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pairing"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testIdentity{key, cert, ident.Of(der)}
}

// The identity certificate given to pion yields the device fingerprint in
// the SDP: one fingerprint identifies a device everywhere.
func TestIdentityIsDTLSFingerprint(t *testing.T) {
	id := identity(t)
	fps, err := Fingerprints(offerOf(t, id))
	if err != nil || len(fps) == 0 {
		t.Fatalf("Fingerprints = %v, %v", fps, err)
	}
	for _, f := range fps {
		if f != id.Fingerprint {
			t.Fatalf("SDP fingerprint %s, identity %s", f, id.Fingerprint)
		}
	}
}

func TestAuthorize(t *testing.T) {
	a, b := identity(t), identity(t)
	offer := offerOf(t, a)
	paired := func(f ident.Fingerprint) bool { return f == a.Fingerprint }
	if fp, err := Authorize(offer, a.Fingerprint, paired); err != nil || fp != a.Fingerprint {
		t.Fatalf("paired device: %v", err)
	}
	// Unpaired device.
	if _, err := Authorize(offerOf(t, b), b.Fingerprint, paired); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("unpaired: %v", err)
	}
	// A paired device presenting someone else's fingerprint over its own TLS.
	if _, err := Authorize(offer, b.Fingerprint, func(ident.Fingerprint) bool { return true }); !errors.Is(err, ErrNotTLSPeer) {
		t.Fatalf("other TLS peer: %v", err)
	}
	// Session-level and media-level fingerprints that differ.
	mixed := strings.Replace(offer, "m=application", "a=fingerprint:sha-256 "+b.Fingerprint.String()+"\r\nm=application", 1)
	if _, err := Authorize(mixed, a.Fingerprint, paired); !errors.Is(err, ErrMixed) {
		t.Fatalf("mixed: %v", err)
	}
	// No fingerprint, another hash, garbage.
	none := strings.ReplaceAll(offer, "a=fingerprint:", "a=x-fingerprint:")
	if _, err := Authorize(none, a.Fingerprint, paired); !errors.Is(err, ErrNoFingerprint) {
		t.Fatalf("none: %v", err)
	}
	sha1 := strings.Replace(offer, "a=fingerprint:sha-256", "a=fingerprint:sha-1", 1)
	if _, err := Authorize(sha1, a.Fingerprint, paired); !errors.Is(err, ErrSDP) {
		t.Fatalf("sha-1: %v", err)
	}
	if _, err := Authorize("not sdp", a.Fingerprint, paired); !errors.Is(err, ErrSDP) {
		t.Fatalf("garbage: %v", err)
	}
	if err := AuthorizeAnswer(offer, b.Fingerprint); !errors.Is(err, ErrNotExpected) {
		t.Fatalf("answer from another device: %v", err)
	}
}

func FuzzFingerprints(f *testing.F) {
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 " + ident.Of([]byte("x")).String() + "\r\n")
	f.Add("v=0\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		fps, err := Fingerprints(s)
		if err == nil {
			for _, fp := range fps {
				if fp.IsZero() && !strings.Contains(s, "00:00") {
					t.Fatalf("zero fingerprint from %q", s)
				}
			}
		}
	})
}

func TestFilterCandidates(t *testing.T) {
	sdp := "v=0\r\ns=-\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" +
		"a=candidate:1 1 udp 2122260223 10.1.0.2 5000 typ host\r\n" +
		"a=candidate:2 1 udp 2122260223 8.8.8.8 5000 typ host\r\n" +
		"a=candidate:3 1 udp 2122260223 0b5f2c4e-aaaa.local 5000 typ host\r\n" +
		"a=candidate:4 1 udp 2122260223 not-an-ip 5000 typ host\r\n" +
		"a=candidate:5 1 udp\r\n" +
		"a=candidate:6 1 udp 2122260223 10.1.0.3 5000 typ host\r\n" +
		"a=end-of-candidates\r\n"
	onLink := func(a netip.Addr) bool { return netip.MustParsePrefix("10.1.0.0/24").Contains(a) }
	out, dropped := FilterCandidates(sdp, onLink, 2)
	if dropped != 4 || !strings.Contains(out, " 10.1.0.2 ") || !strings.Contains(out, ".local ") ||
		strings.Contains(out, "8.8.8.8") || strings.Contains(out, "10.1.0.3") || !strings.HasSuffix(out, "a=end-of-candidates\r\n") {
		t.Fatalf("dropped %d:\n%s", dropped, out)
	}
}

func FuzzFilterCandidates(f *testing.F) {
	f.Add("a=candidate:1 1 udp 1 10.0.0.1 5 typ host\r\n", 3)
	f.Add("a=candidate:\na=candidate:1 1 udp 1 x.local 5 typ host", 1)
	f.Fuzz(func(t *testing.T, sdp string, max int) {
		out, dropped := FilterCandidates(sdp, func(a netip.Addr) bool { return a.Is4() }, max)
		kept := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "a=candidate:") {
				kept++
			}
		}
		if kept > max && kept > 0 || len(out) > len(sdp) || dropped < 0 {
			t.Fatalf("kept %d (max %d), dropped %d", kept, max, dropped)
		}
	})
}
