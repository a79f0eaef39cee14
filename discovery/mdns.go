package discovery

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
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

// Advertiser publishes this device as _pairing._tcp: each interface's
// zone (a github.com/hashicorp/mdns MDNSService: the PTR, SRV, TXT, A and
// AAAA records of DNS-SD) holds that interface's confirmed addresses, and
// our own responder (see responder) answers from it on port 5353.
//
// That library's Server is not used: it answers a legacy unicast query
// with ID 0 and no question (so an mDNS reflector between subnets, or a
// plain resolver, drops the answer), answers every query by unicast (so
// an mDNS stack on the same host never hears it), and needs one server,
// socket pair and pair of goroutines per interface. It also never
// announces unsolicited and sends no goodbye; neither does the responder,
// so peers learn of a change on their next query (beacons carry changes
// at once).
type Advertiser struct {
	Name        string
	Fingerprint ident.Fingerprint
	Port        int
	Logger      *slog.Logger

	mu     sync.Mutex
	resp   *responder        // nil until an interface has an address
	keys   map[string]string // by interface: what its zone answers
	closed bool
}

// InstanceName is the device name made unique on the LAN with the start
// of its ID, e.g. "kitchen (MFRG)".
func InstanceName(name string, fp ident.Fingerprint) string {
	return fmt.Sprintf("%s (%s)", name, fp.ID()[:4])
}

// Update makes the responder answer with addrs (confirmed addresses with
// their interfaces) on their interfaces, and on no other.
func (a *Advertiser) Update(addrs []Address) {
	byIf := map[string][]net.IP{}
	for _, ad := range addrs {
		if ad.Interface != "" {
			byIf[ad.Interface] = append(byIf[ad.Interface], net.IP(ad.IP.WithZone("").AsSlice()))
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	zones, keys := map[int]mdns.Zone{}, map[string]string{}
	for ifname, ips := range byIf {
		ifi, err := net.InterfaceByName(ifname)
		if err == nil && (ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagUp == 0) {
			err = errors.New("interface cannot multicast")
		}
		var zone *mdns.MDNSService
		if err == nil {
			zone, err = a.zone(ips)
		}
		if err != nil {
			a.log().Info("mdns: not advertising on interface", "interface", ifname, "err", err)
			continue
		}
		zones[ifi.Index] = zone
		keys[ifname] = fmt.Sprint(a.Name, a.Port, ips)
		if a.keys[ifname] != keys[ifname] {
			a.log().Debug("mdns: advertising", "interface", ifname, "addresses", ips, "instance", InstanceName(a.Name, a.Fingerprint))
		}
	}
	if len(zones) > 0 && a.resp == nil {
		r, err := newResponder(a.log(), &Links{})
		if err != nil {
			a.log().Info("mdns: not advertising: no socket on port 5353", "err", err)
			return
		}
		a.resp = r
	}
	if a.resp != nil {
		a.resp.setZones(zones)
	}
	a.keys = keys
}

// MDNSHost is the host name mDNS answers for with a device's addresses:
// "pairing-" and the first 8 characters of its ID, lower case, in
// ".local." (the page may be opened by it).
func MDNSHost(fp ident.Fingerprint) string {
	return "pairing-" + strings.ToLower(strings.ReplaceAll(fp.ID(), "-", "")[:8]) + ".local."
}

// zone is the hashicorp/mdns service that answers for this device at ips.
func (a *Advertiser) zone(ips []net.IP) (*mdns.MDNSService, error) {
	id := a.Fingerprint.ID()
	host := MDNSHost(a.Fingerprint)
	txt := []string{"id=" + id, "v=" + mdnsVersion, "fp=" + base64.RawURLEncoding.EncodeToString(a.Fingerprint[:]), "n=" + a.Name}
	return mdns.NewMDNSService(InstanceName(a.Name, a.Fingerprint), MDNSService, "local.", host, a.Port, ips, txt)
}

func (a *Advertiser) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// Close stops the responder. It is safe to call twice; Update does
// nothing after it.
func (a *Advertiser) Close() {
	a.mu.Lock()
	r := a.resp
	a.resp, a.closed = nil, true
	a.mu.Unlock()
	if r != nil {
		r.close()
	}
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
