package discovery

import (
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/mcast"
)

// MDNSService is the DNS-SD service type pairing advertises and browses.
const MDNSService = "_pairing._tcp"

// mDNS TXT keys: id (device ID, for people), v (protocol version),
// fp (fingerprint, base64url: how entries merge with beacons), n (name).
const mdnsVersion = "1"

// Advertiser publishes this device as _pairing._tcp with
// github.com/hashicorp/mdns: one responder per interface, each answering
// with that interface's confirmed addresses.
//
// Limits of that library, and what this wrapper does about them: it never
// announces unsolicited and sends no goodbye, so peers learn of a change on
// their next query (beacons carry changes at once); it answers a query
// from port 5353 by unicast to port 5353, so an mDNS stack in the same
// network namespace (avahi on the same host) does not see the answer;
// NewServer may fail (or, in older versions, panic) on an interface that
// cannot multicast, which is caught and logged here.
type Advertiser struct {
	Name        string
	Fingerprint ident.Fingerprint
	Port        int
	Logger      *slog.Logger

	mu      sync.Mutex
	servers map[string]*mdns.Server // by interface
	zones   map[string]string       // by interface: what its server answers
}

// InstanceName is the device name made unique on the LAN with the start
// of its ID, e.g. "kitchen (MFRG)".
func InstanceName(name string, fp ident.Fingerprint) string {
	return fmt.Sprintf("%s (%s)", name, fp.ID()[:4])
}

// Update makes the responders match addrs (confirmed addresses with their
// interfaces): new interfaces get a responder, changed ones a new zone,
// gone ones none.
func (a *Advertiser) Update(addrs []Address) {
	byIf := map[string][]net.IP{}
	for _, ad := range addrs {
		if ad.Interface != "" {
			byIf[ad.Interface] = append(byIf[ad.Interface], net.IP(ad.IP.WithZone("").AsSlice()))
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.servers == nil {
		a.servers, a.zones = map[string]*mdns.Server{}, map[string]string{}
	}
	for ifname, srv := range a.servers {
		if _, ok := byIf[ifname]; !ok {
			srv.Shutdown()
			delete(a.servers, ifname)
			delete(a.zones, ifname)
		}
	}
	for ifname, ips := range byIf {
		key := fmt.Sprint(a.Name, a.Port, ips)
		if a.zones[ifname] == key {
			continue
		}
		if old := a.servers[ifname]; old != nil {
			old.Shutdown()
			delete(a.servers, ifname)
		}
		srv, err := a.serve(ifname, ips)
		if err != nil {
			a.log().Info("mdns: not advertising on interface", "interface", ifname, "err", err)
			continue
		}
		a.servers[ifname], a.zones[ifname] = srv, key
		a.log().Debug("mdns: advertising", "interface", ifname, "addresses", ips, "instance", InstanceName(a.Name, a.Fingerprint))
	}
}

// MDNSHost is the host name mDNS answers for with a device's addresses:
// "pairing-" and the first 8 characters of its ID, lower case, in
// ".local." (the page may be opened by it).
func MDNSHost(fp ident.Fingerprint) string {
	return "pairing-" + strings.ToLower(strings.ReplaceAll(fp.ID(), "-", "")[:8]) + ".local."
}

func (a *Advertiser) serve(ifname string, ips []net.IP) (srv *mdns.Server, err error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("interface cannot multicast")
	}
	id := a.Fingerprint.ID()
	host := MDNSHost(a.Fingerprint)
	txt := []string{"id=" + id, "v=" + mdnsVersion, "fp=" + base64.RawURLEncoding.EncodeToString(a.Fingerprint[:]), "n=" + a.Name}
	svc, err := mdns.NewMDNSService(InstanceName(a.Name, a.Fingerprint), MDNSService, "local.", host, a.Port, ips, txt)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			srv, err = nil, fmt.Errorf("mdns server panicked: %v", r)
		}
	}()
	return mdns.NewServer(&mdns.Config{Zone: svc, Iface: ifi, Logger: a.stdLogger()})
}

func (a *Advertiser) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *Advertiser) stdLogger() *log.Logger {
	return slog.NewLogLogger(a.log().Handler(), slog.LevelDebug)
}

// Close stops every responder. It is safe to call twice.
func (a *Advertiser) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ifname, srv := range a.servers {
		srv.Shutdown()
		delete(a.servers, ifname)
	}
}

// mdnsQueryTimeout bounds one Browse when ctx has no deadline.
const mdnsQueryTimeout = time.Second

// Browse asks for _pairing._tcp on every usable interface at once and
// calls handle for each complete pairing entry as soon as it arrives, one
// call at a time, until ctx ends (or a second passes, when ctx has no
// deadline). Entries without a valid fingerprint are dropped.
//
// The query is our own (github.com/miekg/dns), not hashicorp/mdns's
// client: that client keeps writing to an entry after handing it over (a
// data race), always waits its whole timeout, and queries IPv4 only on a
// host with a route to 224.0.0.251. This one sends a legacy query from an
// ephemeral port out of each interface; responders (hashicorp/mdns,
// avahi, Bonjour) answer it by unicast, which needs no port 5353.
func Browse(ctx context.Context, interfaces func() ([]net.Interface, error), logger *slog.Logger, handle func(beacon.Event)) error {
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
	q := new(dns.Msg)
	q.SetQuestion(MDNSService+".local.", dns.TypePTR)
	q.RecursionDesired = false
	query, err := q.Pack()
	if err != nil {
		return err
	}
	type packet struct {
		msg    *dns.Msg
		ifname string
		from   netip.Addr
	}
	packets := make(chan packet, 64)
	var wg sync.WaitGroup
	sent := 0
	for _, v6 := range []bool{false, true} {
		c, err := mcast.Listen(v6, 0, 255) // mDNS uses TTL 255
		if err != nil {
			logger.Debug("mdns: socket", "v6", v6, "err", err)
			continue
		}
		go func() { <-ctx.Done(); c.Close() }()
		group := netip.AddrPortFrom(netip.MustParseAddr("224.0.0.251"), 5353)
		if v6 {
			group = netip.AddrPortFrom(netip.MustParseAddr("ff02::fb"), 5353)
		}
		for _, ifi := range ifs {
			if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
				continue
			}
			if err := c.WriteTo(query, group, ifi.Index); err != nil {
				logger.Debug("mdns: query not sent", "interface", ifi.Name, "v6", v6, "err", err)
				continue
			}
			sent++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 9000)
			for {
				n, src, ifindex, err := c.Read(buf)
				if err != nil {
					return
				}
				m := new(dns.Msg)
				if m.Unpack(buf[:n]) != nil || !m.Response {
					continue
				}
				select {
				case packets <- packet{m, mcast.InterfaceName(ifindex), src.Addr()}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if sent == 0 {
		return fmt.Errorf("mdns: no interface could send a query")
	}
	go func() { wg.Wait(); close(packets) }()
	// Records from every answer, joined by name: PTR names the instance,
	// SRV its host and port, TXT its fields, A/AAAA the host's addresses.
	srv := map[string]*dns.SRV{}
	txt := map[string][]string{}
	addrs := map[string][]netip.Addr{}
	done := map[string]string{} // instance → what was handed on
	for p := range packets {
		var instances []string
		for _, rr := range append(p.msg.Answer, p.msg.Extra...) {
			name := strings.ToLower(rr.Header().Name)
			switch r := rr.(type) {
			case *dns.PTR:
				instances = append(instances, strings.ToLower(r.Ptr))
			case *dns.SRV:
				srv[name] = r
				instances = append(instances, name)
			case *dns.TXT:
				txt[name] = r.Txt
			case *dns.A:
				if a, ok := netip.AddrFromSlice(r.A.To4()); ok && !slices.Contains(addrs[name], a) {
					addrs[name] = append(addrs[name], a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(r.AAAA); ok {
					if a.IsLinkLocalUnicast() {
						a = a.WithZone(p.ifname)
					}
					if !slices.Contains(addrs[name], a) {
						addrs[name] = append(addrs[name], a)
					}
				}
			}
		}
		for _, inst := range instances {
			s, ok := srv[inst]
			if !ok || txt[inst] == nil || !strings.HasSuffix(inst, "."+MDNSService+".local.") {
				continue
			}
			host := strings.ToLower(s.Target)
			as := addrs[host]
			if len(as) == 0 {
				as = []netip.Addr{p.from} // the answer's source, at least
			}
			key := fmt.Sprint(s.Port, txt[inst], as)
			if done[inst] == key {
				continue
			}
			done[inst] = key
			ev, err := mdnsEvent(inst, int(s.Port), txt[inst], as, p.ifname)
			if err != nil {
				logger.Debug("mdns: entry dropped", "name", inst, "err", err)
				continue
			}
			if ctx.Err() == nil {
				handle(ev)
			}
		}
	}
	return nil
}

// mdnsEvent turns a resolved service into the event a beacon would give.
func mdnsEvent(instance string, port int, fields []string, addrs []netip.Addr, ifname string) (beacon.Event, error) {
	txt := map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			txt[k] = v
		}
	}
	fp, err := base64.RawURLEncoding.DecodeString(txt["fp"])
	if err != nil || len(fp) != len(ident.Fingerprint{}) {
		return beacon.Event{}, fmt.Errorf("no valid fp= in TXT %q", fields)
	}
	if port <= 0 || port > 65535 {
		return beacon.Event{}, fmt.Errorf("bad port %d", port)
	}
	if v := txt["v"]; v != "" && v != mdnsVersion {
		return beacon.Event{}, fmt.Errorf("version %q", v)
	}
	p := &beacon.Packet{Type: beacon.TypeAnnounce, Port: uint16(port), Name: txt["n"]}
	copy(p.Fingerprint[:], fp)
	// A stranger's name, as a beacon's: the instance name when TXT has
	// none, escaped when it breaks the name rule.
	if p.Name == "" {
		p.Name = strings.TrimSuffix(instance, "."+MDNSService+".local.")
	}
	if beacon.ValidName(p.Name) != nil {
		p.Name = beacon.NeutralName(p.Name)
		if beacon.ValidName(p.Name) != nil {
			p.Name = "?"
		}
	}
	// IPv4 first: it is what a phone or another computer uses most.
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int { return addrRank(a) - addrRank(b) })
	if len(addrs) > beacon.MaxAddrs {
		addrs = addrs[:beacon.MaxAddrs]
	}
	p.Addrs = addrs
	return beacon.Event{Packet: p, From: netip.AddrPortFrom(addrs[0], p.Port), Interface: ifname, At: time.Now()}, nil
}

// SetName renames the advertised device and re-advertises addrs.
func (a *Advertiser) SetName(name string, addrs []Address) {
	a.mu.Lock()
	a.Name = name
	a.mu.Unlock()
	a.Update(addrs)
}
