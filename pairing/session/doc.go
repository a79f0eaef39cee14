// Package session is the daemon's WebRTC connections: the ones kept for
// the next send, the browser pages, and the transfers over them, each
// checked against the paired list.
package session
