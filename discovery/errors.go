package discovery

import "errors"

// Errors of the own-address stages; callers and hints branch on them.
var (
	// ErrNoRoute means the routing table has no route to the outside.
	ErrNoRoute = errors.New("no route to an outside address")
	// ErrNotAddressable means a self-ping to the address did not reach our
	// listener (dropped, refused or reset on the way).
	ErrNotAddressable = errors.New("address not addressable")
	// ErrOtherHost means something answered at the address, but not our
	// listener: the address belongs to another host.
	ErrOtherHost = errors.New("address answered by another host")
	// ErrNoCandidates means no interface has an address the stage keeps.
	ErrNoCandidates = errors.New("no candidate address")
	// ErrNoPeers means no peer answered the discovery query.
	ErrNoPeers = errors.New("no peer answered")
)
