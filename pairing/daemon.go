package pairing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/rtc"
	"github.com/lanpairing/pairing/pairing/web"
)

// Config configures a Daemon. Zero fields take the defaults of defaults.go.
type Config struct {
	StateDir string
	Socket   string
	Listen   string
	Name     string
	// Beacon sets the beacon's port, groups and timing; its Fingerprint,
	// Self, Handle and Logger are filled in by the daemon.
	Beacon          beacon.Config
	RetryInterval   time.Duration
	RecheckInterval time.Duration
	// PairWindow is the lifetime of a pairing window.
	PairWindow time.Duration
	// Open opens a pairing window at start.
	Open bool
	// OnWindow is called whenever the pairing window opens, closes or
	// gets a new secret (serve --open shows the QR code with it).
	OnWindow func(control.Window, bool)
	// IgnoreInterfaces are interface names never used for addresses or
	// beacons.
	IgnoreInterfaces []string
	// LogLevel, when set, is the level of Logger; a config reload sets it.
	LogLevel *slog.LevelVar
	// NoMDNS turns mDNS advertising and browsing off.
	NoMDNS bool
	// WebRTC: STUN/TURN servers and credentials, relay-only, the inbox.
	STUN, TURN                         []string
	TURNUser, TURNPassword, TURNSecret string
	RelayOnly                          bool
	Inbox                              *Inbox
	// ConnectionIdle is how long a connection stays open with nothing
	// sent (0: DefaultConnectionIdle); the receiver waits twice that.
	ConnectionIdle time.Duration
	Logger         *slog.Logger
}

// Daemon is a running pairing daemon.
type Daemon struct {
	cfg       Config
	log       *slog.Logger
	state     *StateDir
	id        *Identity
	listener  net.Listener
	server    *Server
	window    *Window
	store     *Store
	ctlLn     net.Listener
	ctlServer *http.Server
	confirmer *discovery.Confirmer
	beacon    *beacon.Beacon
	table     *discovery.Table
	acq       *discovery.Acquirer
	adv       *discovery.Advertiser // nil with NoMDNS
	started   time.Time

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	name      string   // live: a config reload may change it
	ignore    []string // live: interfaces never used
	addrs     []discovery.Address
	stages    []discovery.Stage
	changed   time.Time
	acquired  chan struct{}                             // closed after the first acquisition
	expiry    *time.Timer                               // fires when the open window's lifetime ends
	reacquire chan struct{}                             // asks the acquisition loop to run now
	closing   bool                                      // Close has begun: goLoop starts nothing
	sessions  []*rtc.Session                            // latest WebRTC sessions, for status
	kept      map[ident.Fingerprint]*kept               // open connections for the next send, by device
	offers    offerLimiter                              // browser offers per source
	pages     map[ident.Fingerprint]*webrtc.DataChannel // open browser pages, by browser
	observed  map[netip.Addr]discovery.Address          // confirmed from peers' observations
	told      map[string]time.Time                      // observations sent, by peer and address
	// lastStatus is the STATUS= line last sent (notify goroutines only).
	lastStatus string
	closeOnce  sync.Once
}

// Start opens the state directory, the listener, the beacon and the control
// socket, and starts the address acquisition in the background.
func Start(cfg Config) (_ *Daemon, err error) {
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir()
	}
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket()
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName()
	}
	if err := beacon.ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("device name: %w", err)
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.RecheckInterval == 0 {
		cfg.RecheckInterval = DefaultRecheckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, started: time.Now(), acquired: make(chan struct{}), reacquire: make(chan struct{}, 1), name: cfg.Name,
		observed: map[netip.Addr]discovery.Address{}, told: map[string]time.Time{}, pages: map[ident.Fingerprint]*webrtc.DataChannel{}, ignore: cfg.IgnoreInterfaces,
		kept: map[ident.Fingerprint]*kept{}}
	// Before anything that may start work: handlers use d.ctx.
	d.ctx, d.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.state, err = OpenStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if d.id, err = LoadIdentity(cfg.StateDir); err != nil {
		return nil, err
	}
	d.log.Info("identity", "id", d.id.ID(), "fingerprint", d.id.Fingerprint.String(), "name", cfg.Name, "version", Version)
	var serr error
	if d.store, serr = OpenStore(cfg.StateDir); serr != nil {
		if d.store == nil {
			return nil, serr
		}
		d.log.Error("paired store", "err", serr)
	}
	d.window = &Window{Lifetime: cfg.PairWindow, OnChange: d.windowChanged}

	if d.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	port := d.listener.Addr().(*net.TCPAddr).Port
	d.confirmer = &discovery.Confirmer{Port: port}
	plain := http.NewServeMux()
	plain.Handle("GET "+discovery.ConfirmPath, d.confirmer)
	page := web.Handler()
	plain.Handle("GET /p", page)
	plain.Handle("GET /p/", page)
	plain.HandleFunc("POST /p/offer", d.handleBrowserOffer)
	if d.cfg.Inbox == nil {
		d.cfg.Inbox = &Inbox{}
	}
	if d.cfg.ConnectionIdle <= 0 {
		d.cfg.ConnectionIdle = DefaultConnectionIdle
	}
	if d.cfg.Inbox.Dir == "" {
		d.cfg.Inbox.Dir = filepath.Join(cfg.StateDir, "inbox")
	}
	d.cfg.Inbox.NameOf = d.peerName
	if n := d.cfg.Inbox.RemovePartial(); n > 0 {
		d.log.Warn("inbox: removed partial files of transfers a crash interrupted", "count", n, "dir", d.cfg.Inbox.Dir)
	}
	d.server = &Server{Identity: d.id, Window: d.window, Store: d.store, Name: d.Name, Plain: plain, Self: d.ips, Logger: d.log,
		OnObserved: d.onObserved, OnConnect: d.onConnect}

	// Everything the handlers use exists before the first packet or
	// request can arrive: the beacon and the listener start last.
	d.table = &discovery.Table{Logger: d.log, Self: d.id.Fingerprint}
	bc := cfg.Beacon
	bc.Fingerprint = d.id.Fingerprint
	bc.Logger = d.log
	bc.Self = d.self
	bc.Handle = d.onBeacon
	bc.Interfaces = d.interfaces
	if bc.AnnounceInterval == 0 {
		bc.AnnounceInterval = beacon.DefaultAnnounceInterval
	}
	d.table.TTL = 3 * bc.AnnounceInterval
	d.cfg.Beacon = bc
	d.acq = &discovery.Acquirer{
		Confirmer:  d.confirmer,
		Interfaces: d.interfaces,
		Peers:      discovery.BeaconReports(bc, discovery.DefaultReportGrace),
		Logger:     d.log,
	}
	if !cfg.NoMDNS {
		d.adv = &discovery.Advertiser{Name: cfg.Name, Fingerprint: d.id.Fingerprint, Port: port, Logger: d.log}
	}
	if d.beacon, err = beacon.New(bc); err != nil {
		// No multicast socket at all: run on, the QR code still works.
		d.log.Warn("beacon disabled", "err", err)
		d.beacon = nil
		err = nil
	}
	d.server.Serve(d.listener)
	d.log.Info("listening", "port", port)
	if err = d.listenControl(); err != nil {
		return nil, err
	}
	d.goLoop(d.acquireLoop)
	d.goLoop(d.notifyLoop)
	d.goLoop(d.watchNetwork)
	if d.adv != nil {
		d.goLoop(d.browseLoop)
	}
	return d, nil
}

func (d *Daemon) goServe(s *http.Server, ln net.Listener) {
	d.goLoop(func(context.Context) {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("server stopped", "err", err)
		}
	})
}

// listenControl opens the control socket (mode 0660), replacing a stale
// socket file but never a live daemon's.
func (d *Daemon) listenControl() error {
	path := d.cfg.Socket
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("control socket %s: another daemon is listening there", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	d.ctlLn = ln
	// A send streams a whole file through the socket: no body limit or
	// read/write deadline there (the socket is for root and its group).
	d.ctlServer = newHTTPServer(nil, d.log)
	d.ctlServer.Handler = d.controlMux()
	d.ctlServer.ReadTimeout, d.ctlServer.WriteTimeout = 0, 0
	d.goServe(d.ctlServer, ln)
	return nil
}

func (d *Daemon) self() beacon.Self {
	s := beacon.Self{Name: d.Name(), Port: uint16(d.Port()), Addrs: d.ips()}
	if len(s.Addrs) > beacon.MaxAddrs {
		s.Addrs = s.Addrs[:beacon.MaxAddrs]
	}
	if w := d.window.Info(); w.Open {
		s.WindowOpen, s.Hint = true, Hint(w.Secret)
	}
	return s
}

// ips are the confirmed own addresses, best first.
func (d *Daemon) ips() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []netip.Addr
	for _, a := range d.addrs {
		out = append(out, a.IP)
	}
	return out
}

// Port is the listener's TCP port.
func (d *Daemon) Port() int { return d.listener.Addr().(*net.TCPAddr).Port }

// Identity is the daemon's identity.
func (d *Daemon) Identity() *Identity { return d.id }

// Acquired is closed once the first address acquisition has finished.
func (d *Daemon) Acquired() <-chan struct{} { return d.acquired }

// goLoop runs f in a goroutine that Close waits for; after Close has
// begun it runs nothing.
func (d *Daemon) goLoop(f func(context.Context)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f(d.ctx)
	}()
}

func (d *Daemon) acquireLoop(ctx context.Context) {
	first := true
	for {
		res := d.acq.Acquire(ctx)
		if ctx.Err() != nil {
			return
		}
		d.keepObserved(ctx, &res)
		d.setResult(res)
		if first {
			d.notifyReady() // before close: the notify loop waits on it
			close(d.acquired)
			first = false
			if d.cfg.Open {
				if _, err := d.OpenWindow(); err != nil {
					d.log.Warn("cannot open a pairing window", "err", err)
				}
			}
		}
		wait := d.cfg.RecheckInterval
		if len(res.Addresses) == 0 {
			wait = d.cfg.RetryInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-d.reacquire:
		}
	}
}

// setResult installs an acquisition's result, plus the addresses peers'
// observations confirmed (keepObserved re-checked them before).
func (d *Daemon) setResult(res discovery.Result) {
	d.updateAddrs(func() ([]discovery.Address, []discovery.Stage) {
		addrs := slices.Clone(res.Addresses)
		for ip, a := range d.observed {
			if !slices.ContainsFunc(addrs, func(x discovery.Address) bool { return x.IP.WithZone("") == ip }) {
				addrs = append(addrs, a)
			}
		}
		return addrs, res.Stages
	})
}

// updateAddrs replaces the addresses and stages with what f returns; f
// runs under d.mu and sees the current ones, so concurrent updates (the
// acquisition loop, a peer's observation) never undo each other. Then it
// re-announces when the addresses changed.
func (d *Daemon) updateAddrs(f func() ([]discovery.Address, []discovery.Stage)) {
	d.mu.Lock()
	old := ips(d.addrs)
	d.addrs, d.stages = f()
	addrs, stages := slices.Clone(d.addrs), slices.Clone(d.stages)
	changed := !slices.Equal(old, ips(addrs))
	if changed {
		d.changed = time.Now()
	}
	if d.adv != nil {
		d.adv.Update(addrs) // under d.mu: updates apply in order
	}
	d.mu.Unlock()
	if !changed {
		return
	}
	for _, s := range stages {
		d.log.Info("address stage", "stage", s.Name, "status", s.Status, "err", s.Error, "duration_ms", s.DurationMS)
	}
	if len(addrs) == 0 {
		var why []any
		for _, s := range stages {
			why = append(why, s.Name, s.Status+": "+s.Error)
		}
		d.log.Warn("no reachable own address; retrying", append(why, "retry", d.cfg.RetryInterval)...)
	} else {
		best := addrs[0]
		d.log.Info("own addresses", "addresses", ips(addrs), "best", best.IP, "interface", best.Interface, "stage", best.Stage, "evidence", best.Evidence)
	}
	if d.beacon != nil {
		if err := d.beacon.Announce(); err != nil {
			d.log.Warn("announce failed", "err", err)
		}
	}
	if w := d.window.Info(); w.Open {
		d.windowChanged(w) // the QR code carries the new addresses
	}
}

func ips(as []discovery.Address) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		out = append(out, a.IP)
	}
	return out
}

// Status is a snapshot of what the daemon is doing.
func (d *Daemon) Status() control.Status {
	d.mu.Lock()
	st := control.Status{
		ID: d.id.ID(), Fingerprint: d.id.Fingerprint.String(), Name: d.name, Port: d.Port(),
		Addresses: slices.Clone(d.addrs), Stages: slices.Clone(d.stages),
		AddressesChanged: d.changed, Started: d.started,
		Version: Version, StateDir: d.cfg.StateDir, UptimeS: time.Since(d.started).Round(time.Second).Seconds(),
	}
	d.mu.Unlock()
	if w := d.window.Info(); w.Open {
		st.Window = control.WindowState{Open: true, Expires: w.Expires}
	}
	st.Paired = len(d.store.List())
	st.Connections = d.connections()
	st.Peers = d.table.Peers()
	for _, p := range st.Peers {
		if _, ok := d.store.Get(p.Fingerprint); ok {
			st.PairedOnline++
		}
	}
	if d.beacon != nil {
		st.Beacon = d.beacon.Stats()
	}
	if st.Addresses == nil {
		st.Addresses = []discovery.Address{}
	}
	if st.Peers == nil {
		st.Peers = []discovery.Peer{}
	}
	return st
}

// Close says goodbye, stops every goroutine, closes the listeners and
// removes the control socket. It is safe to call twice.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		sdNotify(d.log, "STOPPING=1")
		d.mu.Lock()
		d.closing = true
		d.mu.Unlock()
		d.cancel()
		d.mu.Lock()
		if d.expiry != nil {
			d.expiry.Stop()
		}
		d.mu.Unlock()
		if d.beacon != nil {
			d.beacon.Close()
		}
		if d.adv != nil {
			d.adv.Close()
		}
		d.closeSessions()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if d.server != nil {
			d.server.Close(ctx)
		}
		if d.ctlServer != nil {
			d.ctlServer.Shutdown(ctx)
		}
		if d.ctlLn != nil {
			os.Remove(d.cfg.Socket)
		}
		d.wg.Wait()
		if d.state != nil {
			d.state.Close()
		}
	})
	return nil
}
