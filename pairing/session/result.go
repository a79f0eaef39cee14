package session

// The sessions' results, in their own types: the daemon turns them into
// the control API's (internal/control mirrors them, never aliases).

// SendResult is a delivered message or file.
type SendResult struct {
	Peer   string // the peer's name
	Name   string // the file's relative path ("" for a text)
	Bytes  int64
	SHA256 string // of a file
	// ConnectMS is the time to an open data channel: a new connection,
	// or the check that a kept one (Reused) still answers.
	ConnectMS float64
	Reused    bool
	// Path is how it went: tls (direct) or webrtc (data channel).
	Path       string
	DurationMS float64
	Pair       string // the selected ICE candidate pair (webrtc)
	// ResumedBytes is what the receiver already had of the file (kept
	// from a broken transfer): not sent again.
	ResumedBytes int64
}

// Connection is one of the latest connections or direct transfers.
type Connection struct {
	Peer string // device ID
	Role string // offer or answer (webrtc), send or receive (tls)
	// Path is webrtc (a data channel) or tls (the direct transfer path).
	Path   string
	Events []ConnEvent
	Pair   string // the selected ICE candidate pair (webrtc)
}

// ConnEvent is one state change of a Connection.
type ConnEvent struct {
	AtMS  float64
	What  string
	State string
}
