package pairing

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
)

// ErrNotStored: the pairing was proved but the store could not write it.
var ErrNotStored = errors.New("cannot store the pairing")

// Accepter accepts pairings, for the native path (a TLS client, see
// Server) and the browser path (a page over its data channel, see package
// session) alike: one place checks a proof or code against the window,
// stores the device, closes the window and logs.
type Accepter struct {
	// Self is this device's fingerprint: it never pairs with itself.
	Self   ident.Fingerprint
	Window *Window
	Store  *Store
	Logger *slog.Logger
}

// Attempt is one device's attempt to pair.
type Attempt struct {
	// Peer is the device to store when the attempt succeeds (Fingerprint,
	// Name, Kind, Addresses, Port); Accept sets PairedAt and LastSeen. Its
	// first address is where the attempt came from.
	Peer PairedPeer
	// Code is the 6-digit code the device typed, or "" for a proof.
	Code string
	// Proof reports, in constant time, whether the device proved the
	// window's secret (it is called under the window's lock, once).
	Proof func(secret []byte) bool
}

// Accept checks a against the window (a failure counts against it and
// the source), stores the device, closes the window and logs. Its errors
// are the window's (see Reason), ErrSelf, or ErrNotStored.
func (a *Accepter) Accept(at Attempt) (PairedPeer, error) {
	p := at.Peer
	var src netip.Addr // the zero address: a source of its own
	if len(p.Addresses) > 0 {
		src = p.Addresses[0].WithZone("")
	}
	err := ErrSelf // before the window counts or spends anything
	switch {
	case p.Fingerprint == a.Self:
	case at.Code != "":
		err = a.Window.CheckCode(src, at.Code)
	default:
		err = a.Window.CheckProof(src, func(secret []byte) bool {
			return at.Proof != nil && at.Proof(secret)
		})
	}
	if err != nil {
		reason, _ := Reason(err)
		a.log().Warn("pairing failed", "peer", p.Fingerprint.ID(), "kind", p.Kind, "from", src, "reason", reason, "err", err)
		return PairedPeer{}, err
	}
	now := time.Now().UTC()
	p.PairedAt, p.LastSeen = now, now
	if err := a.Store.Put(p); err != nil {
		a.log().Error("pairing: store", "peer", p.Fingerprint.ID(), "err", err)
		return PairedPeer{}, fmt.Errorf("%w: %w", ErrNotStored, err)
	}
	a.Window.Close()
	a.log().Info("paired", "peer", p.Fingerprint.ID(), "name", p.Name, "kind", p.Kind, "from", src,
		"by", map[bool]string{true: "code", false: "secret"}[at.Code != ""])
	return p, nil
}

func (a *Accepter) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}
