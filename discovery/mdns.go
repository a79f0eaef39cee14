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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
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

func (a *Advertiser) serve(ifname string, ips []net.IP) (srv *mdns.Server, err error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("interface cannot multicast")
	}
	id := a.Fingerprint.ID()
	host := "pairing-" + strings.ToLower(strings.ReplaceAll(id, "-", "")[:8]) + ".local."
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

// mdnsQueryTimeout is how long one library query listens. The library
// always waits its whole timeout, so Browse runs the queries in the
// background and hands on every entry as it arrives.
const mdnsQueryTimeout = time.Second

// Browse queries _pairing._tcp on every usable interface at once (the
// library queries one interface per call) and calls handle for each
// pairing entry as soon as it arrives, one call at a time, until ctx ends
// or the queries finish. Entries without a valid fingerprint are dropped.
func Browse(ctx context.Context, interfaces func() ([]net.Interface, error), logger *slog.Logger, handle func(beacon.Event)) error {
	if interfaces == nil {
		interfaces = net.Interfaces
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ifs, err := interfaces()
	if err != nil {
		return err
	}
	type entry struct {
		e      *mdns.ServiceEntry
		ifname string
	}
	// Buffered, and read concurrently: the library drops entries that
	// nobody is reading at the moment it has them.
	entries := make(chan entry, 64)
	var wg sync.WaitGroup
	std := slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	queried := 0
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		queried++
		ch := make(chan *mdns.ServiceEntry, 32)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(ch)
			p := &mdns.QueryParam{Service: MDNSService, Domain: "local", Timeout: mdnsQueryTimeout, Interface: &ifi, Entries: ch, Logger: std}
			if err := mdns.QueryContext(ctx, p); err != nil && ctx.Err() == nil {
				logger.Debug("mdns: query", "interface", ifi.Name, "err", err)
			}
		}()
		go func() {
			defer wg.Done()
			for e := range ch {
				select {
				case entries <- entry{e, ifi.Name}:
				case <-ctx.Done():
				}
			}
		}()
	}
	if queried == 0 {
		return fmt.Errorf("mdns: no interface can multicast")
	}
	go func() { wg.Wait(); close(entries) }()
	for en := range entries {
		ev, err := mdnsEvent(en.e, en.ifname)
		if err != nil {
			logger.Debug("mdns: entry dropped", "name", en.e.Name, "err", err)
			continue
		}
		if ctx.Err() == nil {
			handle(ev)
		}
	}
	return nil
}

// mdnsEvent turns a service entry into the event a beacon would give.
func mdnsEvent(e *mdns.ServiceEntry, ifname string) (beacon.Event, error) {
	txt := map[string]string{}
	for _, f := range e.InfoFields {
		if k, v, ok := strings.Cut(f, "="); ok {
			txt[k] = v
		}
	}
	fp, err := base64.RawURLEncoding.DecodeString(txt["fp"])
	if err != nil || len(fp) != len(ident.Fingerprint{}) {
		return beacon.Event{}, fmt.Errorf("no valid fp= in TXT %q", e.InfoFields)
	}
	if e.Port <= 0 || e.Port > 65535 {
		return beacon.Event{}, fmt.Errorf("bad port %d", e.Port)
	}
	p := &beacon.Packet{Type: beacon.TypeAnnounce, Port: uint16(e.Port), Name: txt["n"]}
	copy(p.Fingerprint[:], fp)
	if beacon.ValidName(p.Name) != nil {
		p.Name = strings.TrimSuffix(strings.SplitN(e.Name, "."+MDNSService, 2)[0], ".")
		if beacon.ValidName(p.Name) != nil {
			p.Name = "?"
		}
	}
	var from netip.Addr
	if a, ok := netip.AddrFromSlice(e.AddrV4); ok && e.AddrV4 != nil {
		p.Addrs = append(p.Addrs, a.Unmap())
		from = a.Unmap()
	}
	if e.AddrV6IPAddr != nil {
		if a, ok := netip.AddrFromSlice(e.AddrV6IPAddr.IP); ok {
			a = a.WithZone(e.AddrV6IPAddr.Zone)
			if !slices.Contains(p.Addrs, a) {
				p.Addrs = append(p.Addrs, a)
			}
			if !from.IsValid() {
				from = a
			}
		}
	}
	if !from.IsValid() {
		return beacon.Event{}, fmt.Errorf("no address")
	}
	if v := txt["v"]; v != "" && v != mdnsVersion {
		if _, err := strconv.Atoi(v); err != nil {
			return beacon.Event{}, fmt.Errorf("bad version %q", v)
		}
	}
	return beacon.Event{Packet: p, From: netip.AddrPortFrom(from, p.Port), Interface: ifname, At: time.Now()}, nil
}

// SetName renames the advertised device and re-advertises addrs.
func (a *Advertiser) SetName(name string, addrs []Address) {
	a.mu.Lock()
	a.Name = name
	a.mu.Unlock()
	a.Update(addrs)
}
