package pairing

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

// PayloadVersion is the version of the QR payload (v=).
const PayloadVersion = 1

// SecretLen is the size of a window secret: 128 bits.
const SecretLen = 16

// maxPayloadLen bounds what ParsePayload reads.
const maxPayloadLen = 2048

// ErrPayload is wrapped by every ParsePayload error.
var ErrPayload = errors.New("invalid pairing link")

// Payload is what a QR code or link carries:
//
//	http://<best address>:<port>/p#v=1&fp=<fingerprint>&s=<secret>&a=<other addresses>&n=<name>
//
// fp and s are base64url without padding (32 and 16 bytes); a is a comma
// separated list of IP addresses (same port); n is the device name. The
// fragment never leaves a browser. A link for chat has no s (the receiver
// types the code shown on the device instead).
type Payload struct {
	Host        netip.Addr // from the URL; invalid for a bare fragment
	Port        uint16     // from the URL; 0 for a bare fragment
	Fingerprint ident.Fingerprint
	Secret      []byte // nil in link-and-code mode
	Addrs       []netip.Addr
	Name        string
}

// Candidates are the addresses to try, the URL's host first.
func (p *Payload) Candidates() []netip.Addr {
	var out []netip.Addr
	if p.Host.IsValid() {
		out = append(out, p.Host)
	}
	for _, a := range p.Addrs {
		if a != p.Host {
			out = append(out, a)
		}
	}
	return out
}

// URL is the payload as the QR code carries it.
func (p *Payload) URL() string {
	q := []string{"v=" + strconv.Itoa(PayloadVersion), "fp=" + b64(p.Fingerprint[:])}
	if p.Secret != nil {
		q = append(q, "s="+b64(p.Secret))
	}
	var as []string
	for _, a := range p.Addrs {
		if a != p.Host {
			as = append(as, a.String())
		}
	}
	if len(as) > 0 {
		q = append(q, "a="+strings.Join(as, ","))
	}
	if p.Name != "" {
		q = append(q, "n="+url.QueryEscape(p.Name))
	}
	host := net.JoinHostPort(p.Host.WithZone("").String(), strconv.Itoa(int(p.Port)))
	return "http://" + host + "/p#" + strings.Join(q, "&")
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// ParsePayload reads a pairing URL or its bare fragment ("v=1&fp=…").
func ParsePayload(s string) (*Payload, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxPayloadLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrPayload, maxPayloadLen)
	}
	p := &Payload{}
	frag := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPayload, err)
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("%w: scheme %q, want http", ErrPayload, u.Scheme)
		}
		if p.Host, err = netip.ParseAddr(u.Hostname()); err != nil {
			return nil, fmt.Errorf("%w: host %q is not an IP address", ErrPayload, u.Hostname())
		}
		port, err := strconv.ParseUint(u.Port(), 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("%w: missing or bad port %q", ErrPayload, u.Port())
		}
		p.Port = uint16(port)
		frag = u.Fragment
	}
	frag = strings.TrimPrefix(frag, "#")
	q, err := url.ParseQuery(frag)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	for k, v := range q {
		if len(v) > 1 {
			return nil, fmt.Errorf("%w: %s given twice", ErrPayload, k)
		}
	}
	switch v := q.Get("v"); v {
	case strconv.Itoa(PayloadVersion):
	case "":
		return nil, fmt.Errorf("%w: no version (v=)", ErrPayload)
	default:
		return nil, fmt.Errorf("%w: version %q is not supported (this program speaks v=%d; update it)", ErrPayload, v, PayloadVersion)
	}
	fp, err := base64.RawURLEncoding.DecodeString(q.Get("fp"))
	if err != nil || len(fp) != len(p.Fingerprint) {
		return nil, fmt.Errorf("%w: fingerprint (fp=) must be %d bytes of base64url", ErrPayload, len(p.Fingerprint))
	}
	copy(p.Fingerprint[:], fp)
	if q.Has("s") {
		if p.Secret, err = base64.RawURLEncoding.DecodeString(q.Get("s")); err != nil || len(p.Secret) != SecretLen {
			return nil, fmt.Errorf("%w: secret (s=) must be %d bytes of base64url", ErrPayload, SecretLen)
		}
	}
	if a := q.Get("a"); a != "" {
		for _, f := range strings.Split(a, ",") {
			ip, err := netip.ParseAddr(f)
			if err != nil || ip.Zone() != "" {
				return nil, fmt.Errorf("%w: address %q in a=", ErrPayload, f)
			}
			p.Addrs = append(p.Addrs, ip)
		}
		if len(p.Addrs) > beacon.MaxAddrs {
			return nil, fmt.Errorf("%w: more than %d addresses", ErrPayload, beacon.MaxAddrs)
		}
	}
	if q.Has("n") {
		if err := beacon.ValidName(q.Get("n")); err != nil {
			return nil, fmt.Errorf("%w: name (n=): %v", ErrPayload, err)
		}
		p.Name = q.Get("n")
	}
	return p, nil
}
