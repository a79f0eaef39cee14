package control

import "errors"

// Reasons a control request failed, for callers that branch on them.
const (
	ReasonUnknownPeer   = "unknown_peer"   // no paired device has that name or ID
	ReasonAmbiguousPeer = "ambiguous_peer" // several do; the message lists them
	ReasonPageClosed    = "page_closed"    // the phone's page is closed: nothing to send to
	ReasonWindowClosed  = "window_closed"  // no pairing window is open (CurrentWindow)
	ReasonNotConfirmed  = "not_confirmed"  // qr --address names no confirmed address of ours
	ReasonNoAddress     = "no_address"     // no reachable own address yet: no QR code
	// ReasonResumeMismatch: the receiver's partial of a file was not the
	// start of this file; it removed it, and the file goes again whole.
	ReasonResumeMismatch = "resume_mismatch"
	// ReasonRefused: the receiver refused the file, or a piece of it
	// (its words follow); what arrived before is kept for a resume.
	ReasonRefused = "refused"
	// A join that failed carries the pairing reason of its error
	// (pairing.KnownReason: "wrong_secret", "window_closed", "self", …).
)

// Error is a failed control request as the daemon described it.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ReasonOf is err's reason code, "" when it has none.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
