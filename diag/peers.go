package diag

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
)

// PeerFacts is the peers step's record: the devices that answered a
// discovery query (beacon and mDNS), with where each of their addresses
// is, and the ones left out because they are this host.
type PeerFacts struct {
	Peers []FoundPeer `json:"peers"`
	// Self are answers from this host's own daemon (left out of Peers).
	Self  []FoundPeer `json:"self,omitempty"`
	Error string      `json:"error,omitempty"`
	// Gateways are the default gateways and whether they answer
	// (dialled while the query waits for answers).
	Gateways []GatewayProbe `json:"gateways,omitempty"`
}

// FoundPeer is one device that answered, or that the daemon heard.
type FoundPeer struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Addresses []PeerAddr `json:"addresses"`
	Port      uint16     `json:"port"`
	SeenAs    netip.Addr `json:"seen_as,omitzero"`
	Sources   []string   `json:"sources"`
	// Heard is how this run knows it: "query" (it answered the peers
	// step's query) or "daemon" (only the daemon's table has it, last
	// seen at LastSeen).
	Heard    string    `json:"heard"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Why is why a Self entry is this host.
	Why string `json:"why,omitempty"`
}

// PeerAddr is one address of a peer: on which of our links it lies, and
// the interface the kernel's lookup picks for it.
type PeerAddr struct {
	Addr netip.Addr `json:"addr"`
	// Link is our interface whose prefix holds it ("" off-link).
	Link  string `json:"link,omitempty"`
	Route string `json:"route,omitempty"`
	// RouteClass is the class of Route (lan, tunnel, virtual).
	RouteClass string `json:"route_class,omitempty"`
}

// OnLink reports whether some address of p is on one of our links.
func (p FoundPeer) OnLink() bool {
	return slices.ContainsFunc(p.Addresses, func(a PeerAddr) bool { return a.Link != "" })
}

// discoverWait is how long the peers step listens for answers.
const discoverWait = 1500 * time.Millisecond

func gatherPeers(ctx context.Context, e *env, in Facts) Facts {
	out := &PeerFacts{}
	self, _ := pairing.ReadFingerprint(e.cfg.StateDir)
	var daemonFP ident.Fingerprint
	if in.Daemon != nil && in.Daemon.Status != nil {
		daemonFP, _ = ident.Parse(in.Daemon.Status.Fingerprint)
	}
	qctx, cancel := context.WithTimeout(ctx, discoverWait)
	defer cancel()
	gws := make(chan []GatewayProbe, 1)
	go func() {
		var defaults []RouteEntry
		if in.Routes != nil {
			defaults = in.Routes.Defaults
		}
		gws <- probeGateways(qctx, defaults)
	}()
	peers, err := discovery.Discover(qctx, beacon.Config{Interfaces: e.cfg.Interfaces}, discovery.DiscoverOptions{Logger: e.log})
	if err != nil {
		out.Error = err.Error()
	}
	// The daemon's table: devices it heard (by their announcements)
	// that did not answer this query.
	if in.Daemon != nil && in.Daemon.Status != nil {
		for _, dp := range in.Daemon.Status.Peers {
			fp, err := ident.Parse(dp.Fingerprint)
			if err != nil || slices.ContainsFunc(peers, func(p discovery.Peer) bool { return p.Fingerprint == fp }) {
				continue
			}
			peers = append(peers, discovery.Peer{ID: dp.ID, Fingerprint: fp, Name: dp.Name, Addresses: dp.Addresses, Port: dp.Port,
				Sources: dp.Sources, LastSeen: dp.LastSeen, Source: "daemon"})
		}
	}
	for _, p := range peers {
		fp := FoundPeer{ID: p.ID, Name: p.Name, Port: p.Port, SeenAs: p.SeenAs, Sources: p.Sources, Heard: "query"}
		if p.Source == "daemon" {
			fp.Heard, fp.LastSeen = "daemon", p.LastSeen
		}
		own := len(p.Addresses) > 0
		for _, a := range p.Addresses {
			pa := PeerAddr{Addr: a, Link: in.Interfaces.linkOf(a)}
			if rt, err := routeTo(a.WithZone("")); err == nil {
				pa.Route = rt.Interface
				if i, ok := in.Interfaces.byName(rt.Interface); ok {
					pa.RouteClass = i.Class
				}
			}
			own = own && in.Interfaces.isOwn(a)
			fp.Addresses = append(fp.Addresses, pa)
		}
		switch {
		case !self.IsZero() && p.Fingerprint == self:
			fp.Why = "the fingerprint of this state directory"
		case !daemonFP.IsZero() && p.Fingerprint == daemonFP:
			fp.Why = "the running daemon's fingerprint"
		case own:
			fp.Why = "every address it announces is this host's"
		}
		if fp.Why != "" {
			out.Self = append(out.Self, fp)
		} else {
			out.Peers = append(out.Peers, fp)
		}
	}
	out.Gateways = <-gws
	return Facts{Peers: out}
}

// PeerReachFacts is the peer-reachability step's record: a TCP connect
// to each address of each peer found, then on the first that connects a
// small request and a response of several full-size packets.
type PeerReachFacts struct {
	Peers []PeerReach `json:"peers"`
}

// PeerReach is one peer's addresses dialled.
type PeerReach struct {
	Name  string       `json:"name"`
	ID    string       `json:"id"`
	Dials []DialResult `json:"dials"`
	// Small and Large: "ok" or "stalled", on the first address that
	// connected.
	Small string `json:"small,omitempty"`
	Large string `json:"large,omitempty"`
	// Neighbours are the kernel's neighbour states of the addresses
	// after the dials (REACHABLE, FAILED…), by address.
	Neighbours map[string]string `json:"neighbours,omitempty"`
}

// Bounds of the peer-reachability step.
const (
	maxReachProbes = 8 // peers probed
	maxReachAddrs  = 4 // addresses of one peer dialled
)

func gatherPeerReach(ctx context.Context, e *env, in Facts) Facts {
	out := &PeerReachFacts{}
	if in.Peers == nil {
		return Facts{PeerReach: out}
	}
	peers := in.Peers.Peers
	if len(peers) > maxReachProbes {
		peers = peers[:maxReachProbes]
	}
	out.Peers = make([]PeerReach, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { out.Peers[i] = reachPeer(ctx, p) })
	}
	wg.Wait()
	return Facts{PeerReach: out}
}

// reachTimeout bounds a connect to a peer found on the LAN (a LAN answers
// in milliseconds); reachRetryTimeout the second try after a timeout.
const (
	reachTimeout      = 700 * time.Millisecond
	reachRetryTimeout = 2 * time.Second
)

func reachPeer(ctx context.Context, p FoundPeer) PeerReach {
	x := PeerReach{Name: p.Name, ID: p.ID, Neighbours: map[string]string{}}
	var targets []netip.AddrPort
	for _, a := range p.Addresses {
		if a.Addr.Is6() && a.Addr.IsLinkLocalUnicast() && a.Addr.Zone() == "" {
			continue
		}
		if len(targets) < maxReachAddrs {
			targets = append(targets, netip.AddrPortFrom(a.Addr, p.Port))
		}
	}
	x.Dials = make([]DialResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			conn, d := dialTCP(ctx, t, reachTimeout)
			if d.Outcome == DialTimeout {
				// A silence is what a filter gives, and a busy host too:
				// it counts only when a longer second try meets it again.
				conn, d = dialTCP(ctx, t, reachRetryTimeout)
			}
			if conn != nil {
				conn.Close()
			}
			x.Dials[i] = d
		})
	}
	wg.Wait()
	for i, d := range x.Dials {
		if st := neighbourState(targets[i].Addr()); st != "" {
			x.Neighbours[targets[i].Addr().String()] = st
		}
		if d.Outcome == DialOK && x.Small == "" {
			x.Small, x.Large = packetSizes(ctx, targets[i])
		}
	}
	return x
}

// packetSizes asks target for a small answer, then for one of several
// full-size packets: "ok" or "stalled" each.
func packetSizes(ctx context.Context, target netip.AddrPort) (small, large string) {
	var dl net.Dialer
	get := func(path string, d time.Duration) string {
		c, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		cl := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dl.DialContext(ctx, "tcp", target.String())
			}}}
		defer cl.CloseIdleConnections()
		req, err := http.NewRequestWithContext(c, http.MethodGet, "http://peer"+path, nil)
		if err != nil {
			return "stalled"
		}
		req.Host = netip.AddrPortFrom(target.Addr().WithZone(""), target.Port()).String() // the daemon serves its page to its own address only
		resp, err := cl.Do(req)
		if err != nil {
			return "stalled"
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
			return "stalled"
		}
		return "ok"
	}
	small = get(discovery.ConfirmPath, 700*time.Millisecond)
	if small == "ok" {
		large = get("/p/app.js", 1200*time.Millisecond)
	}
	return small, large
}
