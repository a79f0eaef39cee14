// Package session is the daemon's WebRTC connections: the ones kept for
// the next send, the browser pages, and the transfers over them, each
// checked against the paired list. Sessions holds the daemons' side
// (sends, the kept pool, answered connections); browsers (browser.go,
// page.go) holds the pages' side: offers, the page's channel and its
// typed messages, pairing through pairing.Accepter, renewal, replace,
// unpair notices and the pages open.
//
// Files resume: a transfer that broke off keeps its partial at the
// receiver, and the same file sent again to the same device continues
// from where it stopped, on the direct path (pairing.HeaderOffset) and
// on the data channel (rtc's "head", "offset" and "prefix_sha256").
package session
