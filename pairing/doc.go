// Package pairing is the pairing daemon: device identity, the one-port
// listener, the state directory and the control socket through which the
// pairing commands talk to a running daemon.
package pairing
