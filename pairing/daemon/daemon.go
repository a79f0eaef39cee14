// Package daemon is the composition root of `pairing serve`: it builds the
// parts (own addresses, neighbours, the pairing listener and window,
// sessions, the control socket and systemd service) and wires them
// together; no part imports it.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
	"github.com/lanpairing/pairing/pairing/session"
	"github.com/lanpairing/pairing/pairing/web"
)

// Config configures a Daemon. Zero fields take the defaults of
// config.DefaultSettings and the parts.
type Config struct {
	StateDir string
	Socket   string
	// Settings are what the config file and flags set; Reconfigure
	// applies new ones.
	Settings config.Settings
	// Beacon sets the beacon's port, groups and timing; its Fingerprint,
	// Self, Handle and Logger are filled in by the daemon.
	Beacon beacon.Config
	// Open opens a pairing window at start.
	Open bool
	// OnWindow is called whenever the pairing window opens, closes or
	// gets a new secret (serve --open shows the QR code with it).
	OnWindow func(control.Window, bool)
	// LogLevel, when set, is the level of Logger; a config reload sets it.
	LogLevel *slog.LevelVar
	Logger   *slog.Logger
}

// Daemon is a running pairing daemon: the parts and the wiring between
// them. Each part owns its state, lock and goroutines.
type Daemon struct {
	cfg    Config
	state  *pairing.StateDir
	id     *pairing.Identity
	store  *pairing.Store
	window *pairing.Window
	server *pairing.Server
	ifs    *discovery.Interfaces
	own    *discovery.Own
	nbrs   *discovery.Neighbours
	sess   *session.Sessions
	inbox  *inbox.Inbox
	svc    *service
}

// Start opens the state directory and the listener, starts every part,
// and the address acquisition in the background.
func Start(cfg Config) (_ *Daemon, err error) {
	cfg.StateDir = cmp.Or(cfg.StateDir, config.DefaultStateDir())
	cfg.Socket = cmp.Or(cfg.Socket, config.DefaultSocket())
	cfg.Settings = config.Complete(cfg.Settings, cfg.StateDir)
	s := &cfg.Settings
	if err := beacon.ValidName(s.Name); err != nil {
		return nil, fmt.Errorf("device name: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, ifs: &discovery.Interfaces{}}
	links := &discovery.Links{Interfaces: d.ifs.List}
	d.ifs.Ignore(s.IgnoreInterfaces)
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.state, err = pairing.OpenStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if d.id, err = pairing.LoadIdentity(cfg.StateDir); err != nil {
		return nil, err
	}
	d.cfg.Logger.Info("identity", "id", d.id.ID(), "fingerprint", d.id.Fingerprint.String(), "name", s.Name, "version", pairing.Version)
	var serr error
	if d.store, serr = pairing.OpenStore(cfg.StateDir); serr != nil {
		if d.store == nil {
			return nil, serr
		}
		d.cfg.Logger.Error("paired store", "err", serr)
	}
	ln, err := pairing.ListenKept(cfg.StateDir, s.Listen, d.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.Listen, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	d.inbox = &inbox.Inbox{Dir: s.Inbox.Dir, MaxFile: s.Inbox.MaxFileMB << 20, MaxTotal: s.Inbox.MaxInboxMB << 20, NameOf: func(fp ident.Fingerprint) string { p, _ := d.store.Get(fp); return p.Name }, Logger: d.cfg.Logger}
	if n := d.inbox.RemovePartial(); n > 0 {
		d.cfg.Logger.Warn("inbox: removed partial files of transfers a crash interrupted", "count", n, "dir", d.inbox.Dir)
	}

	// Every part the handlers use exists before the first packet or
	// request can arrive: the beacon and the listener start last.
	confirmer := &discovery.Confirmer{Port: port}
	bc := cfg.Beacon
	bc.Fingerprint, bc.Self, bc.Interfaces = d.id.Fingerprint, d.self, d.ifs.List
	d.nbrs = discovery.NewNeighbours(discovery.NeighboursConfig{Beacon: bc, Name: s.Name, Port: port, MDNS: s.MDNS, Logger: d.cfg.Logger,
		Paired: func(fp ident.Fingerprint) bool { _, ok := d.store.Get(fp); return ok },
		Tell: func(ctx context.Context, to netip.AddrPort, fp ident.Fingerprint) error {
			return pairing.TellObserved(ctx, d.id, to, fp)
		},
		OnNewPeer: func() { d.own.ProbeSoon() }})
	probes := newProbes(d.id, d.nbrs, links, d.store)
	d.own = discovery.NewOwn(discovery.OwnConfig{
		Acquirer: &discovery.Acquirer{Confirmer: confirmer, Interfaces: d.ifs.List,
			Peers: discovery.BeaconReports(bc, discovery.DefaultReportGrace), Logger: d.cfg.Logger},
		OnChange:        d.addressesChanged,
		OnAcquired:      d.acquired,
		OnNetworkChange: d.nbrs.Refresh,
		IsOwn:           links.IsOwn,
		Probe:           probes.ask,
		Logger:          d.cfg.Logger,
	})
	d.window = &pairing.Window{Lifetime: s.PairWindow, OnChange: d.windowChanged}
	d.sess = session.New(session.Config{Identity: d.id, Store: d.store, Window: d.window, Inbox: d.inbox, WebRTC: s.WebRTC,
		Name: d.nbrs.Name, Lookup: d.nbrs.Lookup, Logger: d.cfg.Logger,
		OnLink: links.OnLink})
	plain := http.NewServeMux()
	plain.Handle("GET "+discovery.ConfirmPath, confirmer)
	page := web.Handler()
	plain.Handle("GET /p", page)
	plain.Handle("GET /p/", page)
	plain.Handle("GET /favicon.ico", page)
	api := d.sess.PageAPI()
	plain.Handle("POST /p/offer", api)
	plain.Handle("GET "+pairing.PathBulk, api)
	plain.Handle("POST "+pairing.PathBulk, api)
	// Every plain answer carries the page's security headers; a request
	// for another host (DNS rebinding) or a cross-site change is refused
	// before any handler sees it.
	guard := &web.Guard{Port: port, IsOwn: links.IsOwn, Names: []string{discovery.MDNSHost(d.id.Fingerprint)},
		AnyHost: []string{discovery.ConfirmPath}, Logger: d.cfg.Logger}
	d.server = &pairing.Server{Identity: d.id, Window: d.window, Store: d.store, Name: d.nbrs.Name, Plain: guard.Wrap(plain), Self: d.own.IPs, Logger: d.cfg.Logger,
		Hooks: pairing.ServerHooks{OnObserved: d.observed, OnRequest: func(a pairing.Arrival) {
			d.own.Reached(a.Local, a.Remote, a.By, a.Via, a.Trust)
			if !a.Peer.IsZero() {
				probes.verify(a.Peer, a.Remote)
			}
		}, OnProbe: probes.serve}, TLS: d.sess.Handler()}
	d.svc = newService(d.cfg.Logger, d.Status, d.own.Acquired())

	d.server.Serve(ln)
	d.cfg.Logger.Info("listening", "port", port)
	d.nbrs.Start()
	if err = d.svc.listen(cfg.Socket, d.controlMux()); err != nil {
		return nil, err
	}
	d.svc.start()
	d.own.Start()
	return d, nil
}

// acquired: the first acquisition is done. systemd hears READY=1, and
// serve --open gets its window.
func (d *Daemon) acquired() {
	d.svc.ready()
	if d.cfg.Open {
		if _, err := d.OpenWindow(false, netip.Addr{}); err != nil {
			d.cfg.Logger.Warn("cannot open a pairing window", "err", err)
		}
	}
}

// self is what the beacon announces.
func (d *Daemon) self() beacon.Self {
	s := beacon.Self{Name: d.nbrs.Name(), Port: uint16(d.Port()), Addrs: d.own.IPs()}
	if len(s.Addrs) > beacon.MaxAddrs {
		s.Addrs = s.Addrs[:beacon.MaxAddrs]
	}
	if w := d.window.Info(); w.Open {
		s.WindowOpen, s.Hint = true, pairing.Hint(w.Secret)
	}
	return s
}

// addressesChanged tells the other parts about new own addresses: mDNS
// advertises them, the beacon announces them, the QR code carries them.
func (d *Daemon) addressesChanged(addrs []discovery.Address, _ []discovery.Stage) {
	d.nbrs.Advertise(addrs)
	d.nbrs.Announce()
	if w := d.window.Info(); w.Open {
		d.windowChanged(w)
	}
}

// ErrStranger: an observation from a device neither on the LAN nor paired.
var ErrStranger = errors.New("observations are taken from devices on the LAN or paired only")

// observed: a peer says it sees us at addr. Only a device we know (on the
// LAN now, or paired) is heard, and only about an address of ours.
func (d *Daemon) observed(addr netip.Addr, by ident.Fingerprint) error {
	if _, paired := d.store.Get(by); !paired && !d.nbrs.Known(by) {
		return ErrStranger
	}
	return d.own.Observed(addr, by.ID())
}

// Port is the listener's TCP port.
func (d *Daemon) Port() int { return d.server.Port() }

// Identity is the daemon's identity.
func (d *Daemon) Identity() *pairing.Identity { return d.id }

// Acquired is closed once the first address acquisition has finished.
func (d *Daemon) Acquired() <-chan struct{} { return d.own.Acquired() }

// Close says goodbye, stops every part, closes the listeners and removes
// the control socket. It is safe to call twice.
func (d *Daemon) Close() error {
	if d.svc != nil {
		d.svc.stopping()
	}
	if d.own != nil {
		d.own.Close()
	}
	if d.window != nil {
		d.window.Stop()
	}
	if d.nbrs != nil {
		d.nbrs.Close()
	}
	if d.sess != nil {
		d.sess.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if d.server != nil {
		d.server.Close(ctx)
	}
	if d.svc != nil {
		d.svc.close(ctx)
	}
	if d.state != nil {
		d.state.Close()
	}
	return nil
}
