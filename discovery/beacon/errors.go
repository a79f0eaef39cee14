package beacon

import "errors"

// Errors returned by Decode. Callers count drops by them.
var (
	// ErrShort means the packet ended before the fixed header did.
	ErrShort = errors.New("beacon: packet shorter than its header")
	// ErrTooLarge means the packet is larger than MaxPacketSize.
	ErrTooLarge = errors.New("beacon: packet larger than the maximum size")
	// ErrMagic means the packet does not start with the beacon magic.
	ErrMagic = errors.New("beacon: not a pairing beacon (wrong magic)")
	// ErrVersion means the packet's version is not one this code speaks.
	ErrVersion = errors.New("beacon: unsupported version")
	// ErrType means the packet's type is not query, announce, reply or goodbye.
	ErrType = errors.New("beacon: unknown packet type")
	// ErrField means a field is truncated, malformed or repeated too often.
	ErrField = errors.New("beacon: malformed field")
	// ErrOffLink: the packet came from an address on none of our links
	// (a beacon never crosses a router: spoofed, or misrouted).
	ErrOffLink = errors.New("beacon: source not on a link of ours")
	// ErrNoInterface means no interface could join the group or send to it.
	ErrNoInterface = errors.New("beacon: no interface can do multicast")
)
