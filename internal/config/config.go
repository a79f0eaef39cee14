// Package config holds the daemon's settings: what a config file and the
// serve flags set, their defaults (each with its reason) and the default
// paths of the state directory, control socket and config file.
package config

import (
	"cmp"
	"path/filepath"
	"slices"
	"time"
)

// Defaults of the settings, with their reasons.
const (
	// DefaultListen lets the OS choose the port on the first start (a fixed
	// port clashes, and the QR code and beacons carry whatever port we
	// got); later starts keep it (pairing.ListenKept), so a phone's bookmark and
	// browser origin survive restarts.
	DefaultListen = ":0"
	// DefaultConnectionIdle is how long a sender keeps a connection with
	// nothing sent on it; the receiver closes it after twice that. A
	// minute spares the next send the connection set-up (~10 ms), at the
	// cost of keep-alives while it lasts.
	DefaultConnectionIdle = time.Minute
	// DefaultPairWindow is long enough to walk to a phone and scan,
	// short enough that a forgotten window closes by itself.
	DefaultPairWindow = 10 * time.Minute
)

// Settings are what a config file and the serve flags set. Zero values
// are not defaults: start from DefaultSettings.
type Settings struct {
	Name             string
	Listen           string
	PairWindow       time.Duration
	IgnoreInterfaces []string
	MDNS             bool
	LogLevel         string
	LogFormat        string
	WebRTC           WebRTCSettings
	Inbox            InboxSettings
}

// WebRTCSettings are the ICE servers, their credentials and the
// connection lifetime; a reload applies them to the next connection.
type WebRTCSettings struct {
	STUN         []string
	TURN         []string
	TURNUser     string
	TURNPassword string // static credentials
	TURNSecret   string // or a coturn use-auth-secret to mint them
	// RelayOnly makes WebRTC use TURN relays only.
	RelayOnly bool
	// ConnectionIdle closes a WebRTC connection nothing was sent on.
	ConnectionIdle time.Duration
	// Transfer is the path files take to a paired daemon: auto (direct
	// TLS when it connects, else WebRTC), tls or webrtc.
	Transfer string
}

// Equal reports whether a and b configure the same ICE servers,
// credentials and relay policy (ConnectionIdle aside: it changes no
// connection's path).
func (a WebRTCSettings) Equal(b WebRTCSettings) bool {
	return slices.Equal(a.STUN, b.STUN) && slices.Equal(a.TURN, b.TURN) && a.TURNUser == b.TURNUser &&
		a.TURNPassword == b.TURNPassword && a.TURNSecret == b.TURNSecret && a.RelayOnly == b.RelayOnly
}

// InboxSettings say where received files go ("" = inbox in the state
// dir) and limit them (0 = no limit).
type InboxSettings struct {
	Dir        string
	MaxFileMB  int64
	MaxInboxMB int64
}

// DefaultSettings are the settings without a config file or flags.
func DefaultSettings() Settings {
	return Settings{
		Name:       DefaultName(),
		Listen:     DefaultListen,
		PairWindow: DefaultPairWindow,
		MDNS:       true,
		LogLevel:   "info",
		LogFormat:  "text",
		WebRTC:     WebRTCSettings{ConnectionIdle: DefaultConnectionIdle, Transfer: "auto"},
	}
}

// Complete is s with its unset fields (name, listen address, pair
// window, connection idle time, inbox directory) set to their defaults:
// the one place the daemon's defaults are applied. stateDir is where the
// inbox goes when s names none.
func Complete(s Settings, stateDir string) Settings {
	def := DefaultSettings()
	s.Name = cmp.Or(s.Name, def.Name)
	s.Listen = cmp.Or(s.Listen, def.Listen)
	if s.PairWindow <= 0 {
		s.PairWindow = def.PairWindow
	}
	if s.WebRTC.ConnectionIdle <= 0 {
		s.WebRTC.ConnectionIdle = def.WebRTC.ConnectionIdle
	}
	s.Inbox.Dir = cmp.Or(s.Inbox.Dir, filepath.Join(stateDir, "inbox"))
	return s
}
