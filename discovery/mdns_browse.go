package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/mcast"
)

const (
	// mdnsQueryTimeout bounds one Browse when ctx has no deadline.
	mdnsQueryTimeout = time.Second
	// maxMDNSNames bounds the names one browse keeps records of: a LAN
	// has a few devices, a flood of made-up answers has any number.
	maxMDNSNames = 256
)

// ErrMDNSNoQuery means no interface could send an mDNS query.
var ErrMDNSNoQuery = errors.New("mdns: no interface could send a query")

// Browse is BrowseMDNS for callers that need only the events.
func Browse(ctx context.Context, interfaces func() ([]net.Interface, error), logger *slog.Logger, handle func(beacon.Event)) error {
	return BrowseMDNS(ctx, interfaces, logger, func(e MDNSEntry) { handle(e.Event) })
}

// BrowseMDNS asks for _pairing._tcp on every usable interface at once and
// calls handle for each complete pairing entry as soon as it arrives, one
// call at a time, until ctx ends (or a second passes, when ctx has no
// deadline). An entry comes again when it arrives another way (another
// Via, sender or interface) or changed. Entries without a valid
// fingerprint are dropped.
//
// The queries are our own (github.com/miekg/dns), not hashicorp/mdns's
// client: that client keeps writing to an entry after handing it over (a
// data race), always waits its whole timeout, and queries IPv4 only on a
// host with a route to 224.0.0.251. Two queries go out of each interface
// and family:
//
//   - a legacy unicast query from an ephemeral port (a random ID):
//     responders on the link answer it by unicast with that ID, which
//     needs no port 5353 (another responder on the host may hold it), and
//     a reflector relays it by its ID and relays the answer back;
//   - a multicast query from port 5353 (shared, SO_REUSEADDR/REUSEPORT):
//     responders answer it to the group, and a reflector repeats the
//     query on its other subnets and their answers on ours, to port
//     5353, where we listen.
func BrowseMDNS(ctx context.Context, interfaces func() ([]net.Interface, error), logger *slog.Logger, handle func(MDNSEntry)) error {
	if interfaces == nil {
		interfaces = net.Interfaces
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, mdnsQueryTimeout)
		defer cancel()
	}
	ifs, err := interfaces()
	if err != nil {
		return err
	}
	ifs = slices.DeleteFunc(ifs, func(ifi net.Interface) bool {
		return ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0
	})
	q := new(dns.Msg)
	q.SetQuestion(MDNSService+".local.", dns.TypePTR)
	q.RecursionDesired = false
	legacy, err := q.Pack()
	if err != nil {
		return err
	}
	id := q.Id
	q.Id = 0 // RFC 6762 §18.1: a multicast query has ID 0
	multicast, err := q.Pack()
	if err != nil {
		return err
	}
	packets := make(chan mdnsPacket, 64)
	var wg sync.WaitGroup
	sent := 0
	for _, v6 := range []bool{false, true} {
		group := netip.AddrPortFrom(mdnsGroup4, mdnsPort)
		if v6 {
			group = netip.AddrPortFrom(mdnsGroup6, mdnsPort)
		}
		for _, port := range []int{0, mdnsPort} {
			c, err := mcast.Listen(v6, port, 255) // mDNS uses TTL 255
			if err != nil {
				logger.Debug("mdns: socket", "v6", v6, "port", port, "err", err)
				continue
			}
			go func() { <-ctx.Done(); c.Close() }()
			query := legacy
			if port == mdnsPort {
				query = multicast
			}
			for _, ifi := range ifs {
				if port == mdnsPort {
					if err := c.Join(&ifi, group.Addr()); err != nil {
						logger.Debug("mdns: cannot join group", "interface", ifi.Name, "group", group.Addr(), "err", err)
						continue
					}
				}
				if err := c.WriteTo(query, group, ifi.Index); err != nil {
					logger.Debug("mdns: query not sent", "interface", ifi.Name, "v6", v6, "port", port, "err", err)
					continue
				}
				sent++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				readMDNS(ctx, c, port == mdnsPort, id, packets)
			}()
		}
	}
	if sent == 0 {
		return ErrMDNSNoQuery
	}
	go func() { wg.Wait(); close(packets) }()
	col := mdnsCollector{links: &Links{Interfaces: interfaces}, logger: logger}
	for p := range packets {
		for _, e := range col.add(p) {
			if ctx.Err() == nil {
				handle(e)
			}
		}
	}
	return nil
}

// mdnsPacket is one mDNS answer as it arrived.
type mdnsPacket struct {
	msg    *dns.Msg
	ifname string
	from   netip.Addr
	via    string
}

// readMDNS reads answers from c (the port 5353 socket when shared, else
// the legacy query's, whose answers must carry id or, from older
// responders, 0) into packets until c is closed.
func readMDNS(ctx context.Context, c *mcast.Conn, shared bool, id uint16, packets chan<- mdnsPacket) {
	buf := make([]byte, maxMDNSPacket)
	for {
		n, src, ifindex, dst, err := c.ReadDst(buf)
		if err != nil {
			return
		}
		m := new(dns.Msg)
		if m.Unpack(buf[:n]) != nil || !m.Response || m.Opcode != dns.OpcodeQuery || m.Rcode != 0 {
			continue
		}
		via := MDNSViaLegacy
		switch {
		case !shared && m.Id != id && m.Id != 0:
			continue // not the answer to our query
		case shared && src.Port() != mdnsPort:
			continue // RFC 6762 §6: answers come from port 5353
		case shared && dst.IsMulticast():
			via = MDNSViaMulticast
		case shared:
			via = MDNSViaUnicast
		}
		select {
		case packets <- mdnsPacket{m, mcast.InterfaceName(ifindex), src.Addr(), via}:
		case <-ctx.Done():
			return
		}
	}
}

// mdnsCollector joins the records of a browse's answers by name: PTR
// names the instance, SRV its host and port, TXT its fields, A/AAAA the
// host's addresses.
type mdnsCollector struct {
	links  *Links
	logger *slog.Logger
	srv    map[string]*dns.SRV
	txt    map[string][]string
	addrs  map[string][]netip.Addr
	done   map[string]bool // instance and what was handed on
}

// add takes in one answer and returns the entries it completes or
// changes, or that came another way.
func (c *mdnsCollector) add(p mdnsPacket) []MDNSEntry {
	if c.srv == nil {
		c.srv, c.txt, c.addrs, c.done = map[string]*dns.SRV{}, map[string][]string{}, map[string][]netip.Addr{}, map[string]bool{}
	}
	var instances []string
	for _, rr := range append(p.msg.Answer, p.msg.Extra...) {
		name := strings.ToLower(rr.Header().Name)
		switch r := rr.(type) {
		case *dns.PTR:
			instances = append(instances, strings.ToLower(r.Ptr))
		case *dns.SRV:
			if c.srv[name] != nil || len(c.srv) < maxMDNSNames {
				c.srv[name] = r
				instances = append(instances, name)
			}
		case *dns.TXT:
			if c.txt[name] != nil || len(c.txt) < maxMDNSNames {
				c.txt[name] = r.Txt
			}
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				c.addAddr(name, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA); ok {
				if a.IsLinkLocalUnicast() {
					a = a.WithZone(p.ifname)
				}
				c.addAddr(name, a)
			}
		}
	}
	var out []MDNSEntry
	for _, inst := range instances {
		s, ok := c.srv[inst]
		if !ok || c.txt[inst] == nil || !strings.HasSuffix(inst, "."+MDNSService+".local.") {
			continue
		}
		as := slices.Clone(c.addrs[strings.ToLower(s.Target)])
		if len(as) == 0 {
			as = []netip.Addr{p.from} // the answer's source, at least
		}
		ans, as := mdnsFacts(c.links, p.via, p.from, p.ifname, as)
		key := fmt.Sprint(inst, s.Port, c.txt[inst], as, p.via, p.from, p.ifname)
		if c.done[key] || len(c.done) >= maxMDNSNames {
			continue
		}
		c.done[key] = true
		ev, err := mdnsEvent(inst, int(s.Port), c.txt[inst], as, p.ifname)
		if err != nil {
			c.logger.Debug("mdns: entry dropped", "name", inst, "err", err)
			continue
		}
		out = append(out, MDNSEntry{ev, ans})
	}
	return out
}

func (c *mdnsCollector) addAddr(name string, a netip.Addr) {
	if (c.addrs[name] != nil || len(c.addrs) < maxMDNSNames) && !slices.Contains(c.addrs[name], a) {
		c.addrs[name] = append(c.addrs[name], a)
	}
}
