package daemon

import (
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
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

// inboxView is what arrived as the control API shows it.
func inboxView(items []inbox.Item) []control.InboxItem {
	out := make([]control.InboxItem, 0, len(items))
	for _, it := range items {
		out = append(out, control.InboxItem{Kind: it.Kind, From: it.From, Name: it.Name, At: it.At, Text: it.Text,
			File: it.File, Path: it.Path, Size: it.Size, SHA256: it.SHA256})
	}
	return out
}

func clearedView(c inbox.Cleared) control.InboxCleared {
	return control.InboxCleared{Files: c.Files, Bytes: c.Bytes, Texts: c.Texts, Missing: c.Missing}
}
