// Package ident holds the device fingerprint and its short human form,
// shared by discovery (beacons, peer table) and pairing (identity, store).
package ident

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// Fingerprint is the SHA-256 of a device certificate's DER bytes: the value
// WebRTC puts in `a=fingerprint:sha-256`.
type Fingerprint [sha256.Size]byte

// Of returns the fingerprint of a DER certificate.
func Of(der []byte) Fingerprint { return sha256.Sum256(der) }

// IsZero reports whether f is unset.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// String is the SDP form: upper-case hex bytes separated by colons.
func (f Fingerprint) String() string {
	var b strings.Builder
	for i, c := range f {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// IDBytes is how many leading fingerprint bytes the device ID shows: 80
// bits tell devices on a LAN apart; the fingerprint stays the authority.
const IDBytes = 10

// ID is the short human form of f, e.g. "MFRG-GZDF-MZTW-Q2LK".
func (f Fingerprint) ID() string {
	s := idEncoding.EncodeToString(f[:IDBytes])
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// Parse reads a fingerprint in SDP form (colons optional, any case).
func Parse(s string) (Fingerprint, error) {
	var f Fingerprint
	h := strings.ReplaceAll(s, ":", "")
	if len(h) != 2*len(f) {
		return f, fmt.Errorf("fingerprint must be %d hex bytes, got %q", len(f), s)
	}
	if _, err := hex.Decode(f[:], []byte(h)); err != nil {
		return f, fmt.Errorf("fingerprint %q: %w", s, err)
	}
	return f, nil
}

// MarshalText writes the SDP form.
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads the SDP form.
func (f *Fingerprint) UnmarshalText(b []byte) error {
	g, err := Parse(string(b))
	if err != nil {
		return err
	}
	*f = g
	return nil
}
