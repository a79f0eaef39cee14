package ident

import (
	"fmt"

	"github.com/lanpairing/pairing/internal/termsafe"
)

// MaxNameLen bounds a device name: what a beacon carries (one length
// byte's worth, and a DNS label's 63).
const MaxNameLen = 63

// ValidName reports whether s can be a device name: 1 to MaxNameLen
// bytes of UTF-8 without control or format characters (termsafe.Check).
// It is the rule for every device name: beacons, mDNS, the QR link, a
// pairing request, the config, a rename.
func ValidName(s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("name must be 1 to %d bytes, got %d", MaxNameLen, len(s))
	}
	if err := termsafe.Check(s); err != nil {
		return fmt.Errorf("name %w", err)
	}
	return nil
}
