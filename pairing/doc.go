// Package pairing is how two devices come to trust each other: device
// identity, the pairing window (secret, code, attempts), the one-port
// listener and its pair handlers, the pairing client, and the paired store.
package pairing

// Version is set at build time (-ldflags "-X …/pairing.Version=…").
var Version = "dev"
