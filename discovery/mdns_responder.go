package discovery

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"

	"github.com/lanpairing/pairing/internal/mcast"
)

// mDNS on the wire (RFC 6762), and the responder's bounds.
const (
	mdnsPort = 5353
	// qClassUnicast is the top bit of a question's class: the querier
	// prefers a unicast answer (a "QU" question, RFC 6762 §5.4).
	qClassUnicast = 1 << 15
	// legacyTTLMax caps the TTLs of an answer to a legacy unicast query:
	// a plain DNS resolver caches it, and may not hear of a change
	// (RFC 6762 §6.7: at most ten seconds).
	legacyTTLMax = 10
	// multicastGap is the least time between two multicast answers on
	// one interface and family (RFC 6762 §6: a record is not multicast
	// again within one second); queries in between are answered together
	// at its end. It also bounds what a flood of queries makes us send
	// to the whole link: one answer a second.
	multicastGap = time.Second
	// maxQuestions bounds the questions of one query we look at (ours
	// has one; avahi's a few).
	maxQuestions = 16
	// maxMDNSPacket is the largest mDNS message (RFC 6762 §17).
	maxMDNSPacket = 9000
)

var (
	mdnsGroup4 = netip.MustParseAddr("224.0.0.251")
	mdnsGroup6 = netip.MustParseAddr("ff02::fb")
)

// responder answers mDNS queries on port 5353 from the records of
// hashicorp/mdns zones, one zone per interface (its own addresses). It
// replaces that library's Server, whose socket answers a legacy unicast
// query (one from a port other than 5353, RFC 6762 §6.7) with ID 0 and no
// question: a resolver, and an mDNS reflector relaying the query by its
// ID (avahi's enable-reflector), drop such an answer. Here:
//
//   - a legacy unicast query gets a unicast answer to its source address
//     and port, with its ID and question and TTLs of at most ten seconds;
//   - a QU question (top bit of the class) gets a unicast answer to the
//     querier, ID 0;
//   - any other question gets a multicast answer to the group on the
//     interface it came in on, at most one a second (multicastGap).
//
// Unicast answers go only to sources on one of our subnets (or
// link-local): an off-link source is spoofed or routed, and answering it
// would make us a reflector for anyone's traffic. One socket per family
// (SO_REUSEADDR/SO_REUSEPORT, so avahi or another responder on the host
// shares the port), joined to the group on every interface with a zone;
// the interface a query came in on picks the zone.
type responder struct {
	log   *slog.Logger
	links *Links

	mu      sync.Mutex
	conns   []*mcast.Conn
	zones   map[int]mdns.Zone // by interface index
	joined  map[joinKey]bool
	last    map[joinKey]time.Time      // last multicast answer
	pending map[joinKey][]dns.Question // multicast answers waiting for multicastGap
	timers  map[joinKey]*time.Timer    // that send the pending answers
	closed  bool
	wg      sync.WaitGroup
}

// joinKey is one family on one interface.
type joinKey struct {
	ifindex int
	v6      bool
}

// newResponder opens the port 5353 sockets (those of the families that
// work) and starts reading them; nil when none opens.
func newResponder(log *slog.Logger, links *Links) (*responder, error) {
	r := &responder{log: log, links: links, zones: map[int]mdns.Zone{}, joined: map[joinKey]bool{},
		last: map[joinKey]time.Time{}, pending: map[joinKey][]dns.Question{}, timers: map[joinKey]*time.Timer{}}
	var errs []error
	for _, v6 := range []bool{false, true} {
		c, err := mcast.Listen(v6, mdnsPort, 255) // mDNS sends with TTL 255
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.conns = append(r.conns, c)
	}
	if len(r.conns) == 0 {
		return nil, errs[0]
	}
	for _, c := range r.conns {
		r.wg.Add(1)
		go r.read(c)
	}
	return r, nil
}

// setZones makes the responder answer with zones (by interface index)
// and joins the group on their interfaces.
func (r *responder) setZones(zones map[int]mdns.Zone) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.zones = zones
	for ifindex := range zones {
		ifi, err := net.InterfaceByIndex(ifindex)
		if err != nil {
			continue
		}
		for _, c := range r.conns {
			k := joinKey{ifindex, c.V6}
			if r.joined[k] {
				continue
			}
			group := mdnsGroup4
			if c.V6 {
				group = mdnsGroup6
			}
			if err := c.Join(ifi, group); err != nil {
				r.log.Debug("mdns: cannot join group", "interface", ifi.Name, "group", group, "err", err)
				continue
			}
			r.joined[k] = true
		}
	}
}

func (r *responder) read(c *mcast.Conn) {
	defer r.wg.Done()
	buf := make([]byte, maxMDNSPacket)
	for {
		n, src, ifindex, err := c.Read(buf)
		if err != nil {
			r.mu.Lock()
			closed := r.closed
			r.mu.Unlock()
			if closed {
				return
			}
			continue
		}
		r.handle(c, buf[:n], src, ifindex)
	}
}

// handle answers one datagram when it is a query for a zone of ours.
func (r *responder) handle(c *mcast.Conn, b []byte, src netip.AddrPort, ifindex int) {
	r.mu.Lock()
	zone := r.zones[ifindex]
	r.mu.Unlock()
	if zone == nil {
		return
	}
	unicast, multicast := answer(zone, b, src)
	if unicast != nil && r.links.OnLink(src.Addr()) {
		r.send(c, unicast, src, ifindex)
	}
	if len(multicast) > 0 {
		r.multicast(c, ifindex, multicast)
	}
}

// answer decides what the query b from src gets from zone: a message to
// send to src (nil: none), and the questions to answer to the group.
// Anything but a well-formed standard query gets nothing.
func answer(zone mdns.Zone, b []byte, src netip.AddrPort) (*dns.Msg, []dns.Question) {
	var q dns.Msg
	if len(b) > maxMDNSPacket || q.Unpack(b) != nil || q.Response || q.Opcode != dns.OpcodeQuery || q.Rcode != 0 || len(q.Question) == 0 {
		return nil, nil
	}
	legacy := src.Port() != mdnsPort
	var unicast []dns.RR
	var multicast []dns.Question
	for _, qq := range q.Question[:min(len(q.Question), maxQuestions)] {
		plain := qq
		plain.Qclass &^= qClassUnicast
		recs := zone.Records(plain)
		switch {
		case len(recs) == 0:
		case legacy || qq.Qclass&qClassUnicast != 0:
			unicast = append(unicast, recs...)
		case !slices.Contains(multicast, plain):
			multicast = append(multicast, plain)
		}
	}
	if len(unicast) == 0 {
		return nil, multicast
	}
	m := answerMsg(unicast)
	if legacy {
		// RFC 6762 §6.7: the query's ID and question, short TTLs.
		m.Id, m.Question = q.Id, q.Question
		for _, rr := range m.Answer {
			rr.Header().Ttl = min(rr.Header().Ttl, legacyTTLMax)
		}
	}
	return m, multicast
}

// answerMsg is an mDNS answer (RFC 6762 §18: ID 0, QR and AA set, the
// rest zero) carrying recs once each.
func answerMsg(recs []dns.RR) *dns.Msg {
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true, Opcode: dns.OpcodeQuery}, Compress: true}
	for _, rr := range recs {
		if !slices.ContainsFunc(m.Answer, func(x dns.RR) bool { return dns.IsDuplicate(x, rr) }) {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	return m
}

// multicast answers qs to the group on ifindex now, or at the end of
// the current multicastGap together with what else is asked meanwhile.
func (r *responder) multicast(c *mcast.Conn, ifindex int, qs []dns.Question) {
	k := joinKey{ifindex, c.V6}
	if r.schedule(c, k, qs) {
		r.multicastNow(c, k, qs)
	}
}

// schedule reports whether an answer to qs may go out on k now; if not,
// it adds qs to the answer pending there (and starts its timer).
func (r *responder) schedule(c *mcast.Conn, k joinKey, qs []dns.Question) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if p, ok := r.pending[k]; ok {
		for _, q := range qs {
			if !slices.Contains(p, q) && len(p) < maxQuestions {
				p = append(p, q)
			}
		}
		r.pending[k] = p
		return false
	}
	now := time.Now()
	wait := r.last[k].Add(multicastGap).Sub(now)
	if wait <= 0 {
		r.last[k] = now
		return true
	}
	r.pending[k] = qs
	r.wg.Add(1)
	r.timers[k] = time.AfterFunc(wait, func() {
		defer r.wg.Done()
		r.mu.Lock()
		qs := r.pending[k]
		delete(r.pending, k)
		delete(r.timers, k)
		closed := r.closed
		r.mu.Unlock()
		if !closed {
			r.multicastNow(c, k, qs)
		}
	})
	return false
}

// multicastNow sends the answer to qs from the current zone of k's
// interface to the group.
func (r *responder) multicastNow(c *mcast.Conn, k joinKey, qs []dns.Question) {
	r.mu.Lock()
	zone := r.zones[k.ifindex]
	r.last[k] = time.Now()
	r.mu.Unlock()
	if zone == nil {
		return
	}
	var recs []dns.RR
	for _, q := range qs {
		recs = append(recs, zone.Records(q)...)
	}
	if len(recs) == 0 {
		return
	}
	group := mdnsGroup4
	if k.v6 {
		group = mdnsGroup6
	}
	r.send(c, answerMsg(recs), netip.AddrPortFrom(group, mdnsPort), k.ifindex)
}

func (r *responder) send(c *mcast.Conn, m *dns.Msg, to netip.AddrPort, ifindex int) {
	b, err := m.Pack()
	if err == nil {
		err = c.WriteTo(b, to, ifindex)
	}
	if err != nil {
		r.log.Debug("mdns: answer not sent", "to", to, "interface", mcast.InterfaceName(ifindex), "err", err)
	}
}

// close stops the responder and waits for its goroutines; safe twice.
func (r *responder) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	for k, t := range r.timers {
		if t.Stop() {
			r.wg.Done()
		}
		delete(r.timers, k)
	}
	r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.wg.Wait()
}
