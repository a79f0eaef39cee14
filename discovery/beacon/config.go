package beacon

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// Defaults. Each is a field of Config; zero values mean these.
var (
	// DefaultGroup4 is organisation-local (239.255/16): routers never
	// forward it, and it is unlikely to clash with SSDP or mDNS.
	DefaultGroup4 = netip.MustParseAddr("239.255.80.65")
	// DefaultGroup6 is link-local scope ("PAIR" in the low bytes).
	DefaultGroup6 = netip.MustParseAddr("ff02::5041:4952")
)

const (
	// DefaultPort is below Linux's ephemeral range (32768+), so no
	// outgoing connection takes it by chance.
	DefaultPort = 27280
	// DefaultAnnounceInterval keeps traffic low (one small packet per
	// interface every 30 s) while the query at start finds peers at once.
	DefaultAnnounceInterval = 30 * time.Second
	// DefaultReplyDelayMax spreads the replies of N devices to one query
	// while keeping the first answer well under 20 ms.
	DefaultReplyDelayMax = 10 * time.Millisecond
	// DefaultRefreshInterval is how often interfaces are checked for new
	// ones to join.
	DefaultRefreshInterval = 5 * time.Second
	// replyRate and replyBurst bound replies per source address: a
	// discover sends a handful of queries; a flood gets at most this.
	replyRate  = rate.Limit(10)
	replyBurst = 20
	// maxPendingReplies bounds delayed replies in flight (spoofed sources
	// could otherwise each get a goroutine).
	maxPendingReplies = 64
)

// Self is what this device says about itself in announces and replies.
type Self struct {
	Name       string
	Port       uint16
	Addrs      []netip.Addr
	WindowOpen bool
	Hint       []byte
}

// Event is one packet received from another process.
type Event struct {
	Packet    *Packet
	From      netip.AddrPort // source; link-local IPv6 carries its zone
	Interface string         // receiving interface, "" when unknown
	At        time.Time
}

// Config configures a Beacon or a Query. The zero value of every field
// but Handle means its default.
type Config struct {
	Port             int
	Group4, Group6   netip.Addr
	AnnounceInterval time.Duration
	ReplyDelayMax    time.Duration
	RefreshInterval  time.Duration
	// Fingerprint identifies this device; zero for an anonymous querier.
	Fingerprint Fingerprint
	// Self returns what to announce; nil announces nothing but the
	// fingerprint.
	Self func() Self
	// Handle gets every valid packet from another process. It runs on the
	// reader goroutines (one per socket, so concurrently) and must not block.
	Handle func(Event)
	// Interfaces lists interfaces; nil means net.Interfaces.
	Interfaces func() ([]net.Interface, error)
	// Accept, when set, judges the source of a unicast packet (a group's
	// packets never cross a router) before anything else: packets it
	// refuses (off-link, spoofed) are dropped, counted as "off_link".
	Accept func(from netip.Addr) bool
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if !c.Group4.IsValid() {
		c.Group4 = DefaultGroup4
	}
	if !c.Group6.IsValid() {
		c.Group6 = DefaultGroup6
	}
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.ReplyDelayMax == 0 {
		c.ReplyDelayMax = DefaultReplyDelayMax
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Interfaces == nil {
		c.Interfaces = net.Interfaces
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Self == nil {
		c.Self = func() Self { return Self{} }
	}
	if c.Handle == nil {
		c.Handle = func(Event) {}
	}
}
