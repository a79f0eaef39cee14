// Package session is the daemon's WebRTC connections: the ones kept for
// the next send, the browser pages, and the transfers over them, each
// checked against the paired list.
//
// Files resume: a transfer that broke off keeps its partial at the
// receiver, and the same file sent again to the same device continues
// from where it stopped, on the direct path (pairing.HeaderOffset) and
// on the data channel (rtc's "head", "offset" and "prefix_sha256").
package session
