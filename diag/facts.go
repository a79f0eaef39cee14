package diag

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lanpairing/pairing/discovery"
)

// Facts is everything the steps observed, one field per step. A field is
// nil when its step did not return in time (or has not run yet). Facts
// are values: once a step returned them, nothing writes them again.
type Facts struct {
	Interfaces *InterfaceFacts `json:"interfaces,omitempty"`
	Daemon     *DaemonFacts    `json:"daemon,omitempty"`
	Routes     *RouteFacts     `json:"routes,omitempty"`
	Filter     *FilterFacts    `json:"packet_filter,omitempty"`
	Preferred  *PreferredFacts `json:"preferred,omitempty"`
	Listener   *ListenerFacts  `json:"listener,omitempty"`
	SelfReach  *SelfReachFacts `json:"self_reachability,omitempty"`
	Multicast  *MulticastFacts `json:"multicast,omitempty"`
	Paired     *PairedFacts    `json:"paired,omitempty"`
	Peers      *PeerFacts      `json:"peers,omitempty"`
	PeerReach  *PeerReachFacts `json:"peer_reachability,omitempty"`
	MDNS       *MDNSFacts      `json:"mdns,omitempty"`
	Reached    *ReachedFacts   `json:"reached,omitempty"`
	WebRTC     *WebRTCFacts    `json:"webrtc,omitempty"`
	Neighbours *NeighbourFacts `json:"neighbours,omitempty"`
	Clock      *ClockFacts     `json:"clock,omitempty"`
	// Runs is how each step ran (durations, timeouts, panics).
	Runs []StepRun `json:"runs,omitempty"`
}

// merge takes the fields src has that f has not: a step can only add its
// own facts, never replace another's.
func (f *Facts) merge(src Facts) {
	if f.Interfaces == nil {
		f.Interfaces = src.Interfaces
	}
	if f.Daemon == nil {
		f.Daemon = src.Daemon
	}
	if f.Routes == nil {
		f.Routes = src.Routes
	}
	if f.Filter == nil {
		f.Filter = src.Filter
	}
	if f.Preferred == nil {
		f.Preferred = src.Preferred
	}
	if f.Listener == nil {
		f.Listener = src.Listener
	}
	if f.SelfReach == nil {
		f.SelfReach = src.SelfReach
	}
	if f.Multicast == nil {
		f.Multicast = src.Multicast
	}
	if f.Paired == nil {
		f.Paired = src.Paired
	}
	if f.Peers == nil {
		f.Peers = src.Peers
	}
	if f.PeerReach == nil {
		f.PeerReach = src.PeerReach
	}
	if f.MDNS == nil {
		f.MDNS = src.MDNS
	}
	if f.Reached == nil {
		f.Reached = src.Reached
	}
	if f.WebRTC == nil {
		f.WebRTC = src.WebRTC
	}
	if f.Neighbours == nil {
		f.Neighbours = src.Neighbours
	}
	if f.Clock == nil {
		f.Clock = src.Clock
	}
}

// details is the facts of the step name, for its Details.
func (f Facts) details(name string) any {
	var v any
	switch name {
	case StepInterfaces:
		v = f.Interfaces
	case StepDaemon:
		v = f.Daemon
	case StepRoutes:
		v = f.Routes
	case StepFilter:
		v = f.Filter
	case StepPreferred:
		v = f.Preferred
	case StepListener:
		v = f.Listener
	case StepSelfReach:
		v = f.SelfReach
	case StepMulticast:
		v = f.Multicast
	case StepPaired:
		v = f.Paired
	case StepPeers:
		v = f.Peers
	case StepPeerReach:
		v = f.PeerReach
	case StepMDNS:
		v = f.MDNS
	case StepReached:
		v = f.Reached
	case StepWebRTC:
		v = f.WebRTC
	case StepNeighbours:
		v = f.Neighbours
	case StepClock:
		v = f.Clock
	}
	return v
}

// env is what every step may use and none writes: the configuration, the
// log, and this run's temporary listener for the self-pings (opened
// before the first step; the listener step reports on it).
type env struct {
	cfg Config
	log *slog.Logger

	ln        net.Listener
	lnErr     error
	srv       *http.Server
	confirmer *discovery.Confirmer
	acq       *discovery.Acquirer
	// neighStart is the kernel's neighbour tables when the run began.
	neighStart []NeighbourTable
	started    time.Time
}

func newEnv(cfg Config) *env {
	e := &env{cfg: cfg, log: cfg.Logger, started: time.Now()}
	e.neighStart, _ = readNeighbourTables()
	e.ln, e.lnErr = net.Listen("tcp", ":0")
	if e.lnErr == nil {
		e.confirmer = &discovery.Confirmer{Port: e.ln.Addr().(*net.TCPAddr).Port}
		mux := http.NewServeMux()
		mux.Handle("GET "+discovery.ConfirmPath, e.confirmer)
		e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
		go e.srv.Serve(e.ln)
		e.acq = &discovery.Acquirer{Confirmer: e.confirmer, Interfaces: cfg.Interfaces, Logger: e.log}
	}
	return e
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
	}
}
