package daemon

import (
	"net/netip"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
	"github.com/lanpairing/pairing/pairing/session"
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

func sendView(r *session.SendResult) *control.SendResult {
	if r == nil {
		return nil
	}
	return &control.SendResult{Peer: r.Peer, Name: r.Name, Bytes: r.Bytes, SHA256: r.SHA256, ConnectMS: r.ConnectMS, Reused: r.Reused,
		Path: r.Path, DurationMS: r.DurationMS, Pair: r.Pair, ResumedBytes: r.ResumedBytes}
}

func connectionsView(cs []session.Connection) []control.Connection {
	out := make([]control.Connection, 0, len(cs))
	for _, c := range cs {
		events := make([]control.ConnEvent, 0, len(c.Events))
		for _, e := range c.Events {
			events = append(events, control.ConnEvent{AtMS: e.AtMS, What: e.What, State: e.State})
		}
		out = append(out, control.Connection{Peer: c.Peer, Role: c.Role, Path: c.Path, Events: events, Pair: c.Pair})
	}
	return out
}

// PairedView is a stored peer as the control API (and `pairing peers`)
// shows it.
func PairedView(p pairing.PairedPeer, online bool) control.Paired {
	addrs := p.Addresses
	if addrs == nil {
		addrs = []netip.Addr{}
	}
	return control.Paired{ID: p.ID, Name: p.Name, Fingerprint: p.Fingerprint.String(), Kind: p.Kind,
		PairedAt: p.PairedAt, LastSeen: p.LastSeen, Addresses: addrs, Port: p.Port, Online: online}
}
