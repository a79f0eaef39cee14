package daemon

import (
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

// The control API's types are its own (see internal/control); these turn
// the libraries' results into them. The commands use them too when they
// work without a daemon, so both say the same.

// JoinView is a join's result as the control API (and `pairing join
// --json`) shows it.
func JoinView(r *pairing.JoinResult) *control.JoinResult {
	if r == nil {
		return nil
	}
	return &control.JoinResult{Peer: peerInfoView(r.Peer), DurationMS: r.DurationMS, Via: r.Via}
}

func peerInfoView(p pairing.PeerInfo) control.PeerInfo {
	return control.PeerInfo{ID: p.ID, Name: p.Name, Fingerprint: p.Fingerprint, Addresses: p.Addresses, Port: p.Port}
}
