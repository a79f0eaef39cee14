package daemon

import (
	"log/slog"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/pionlog"
	"github.com/lanpairing/pairing/pairing"
)

// Status is a snapshot of what the daemon is doing, from every part.
func (d *Daemon) Status() control.Status {
	addrs, stages, changed := d.own.Addresses()
	st := control.Status{
		Device: control.Device{ID: d.id.ID(), Fingerprint: d.id.Fingerprint.String(), Name: d.nbrs.Name(), Port: d.Port(),
			Started: d.svc.started(), Version: pairing.Version, StateDir: d.cfg.StateDir,
			UptimeS: time.Since(d.svc.started()).Round(time.Second).Seconds()},
		Addresses: []control.Address{}, Stages: []control.Stage{}, AddressesChanged: changed,
		Paired: len(d.store.List()), Connections: connectionsView(d.sess.Connections()),
		WebRTC: control.WebRTCStats{DroppedPackets: pionlog.Dropped()},
	}
	bs, refused := d.nbrs.Stats()
	st.Beacon = beaconStats(bs, refused)
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, addressView(a))
	}
	for _, s := range stages {
		st.Stages = append(st.Stages, control.Stage{Name: s.Name, Status: s.Status, Error: s.Error, DurationMS: s.DurationMS, Details: s.Details})
	}
	if w := d.window.Info(); w.Open {
		st.Window = control.WindowState{Open: true, Expires: w.Expires}
	} else {
		st.Window.Closed = w.Closed
	}
	heard := d.nbrs.Peers()
	st.PairedOnline = len(online(heard, d.store, d.sess.PagesOpen()))
	st.Peers, st.PeersOmitted = peersView(heard, func(fp ident.Fingerprint) bool { _, ok := d.store.Get(fp); return ok })
	return st
}

// peersView lists the devices heard for Status: the paired ones first,
// at most control.MaxPeers; omitted counts those left out.
func peersView(heard []discovery.Peer, paired func(ident.Fingerprint) bool) (list []control.Peer, omitted int) {
	var first, others []control.Peer
	for _, p := range heard {
		if paired(p.Fingerprint) {
			first = append(first, peerView(p))
		} else {
			others = append(others, peerView(p))
		}
	}
	all := append(first, others...)
	if len(all) > control.MaxPeers {
		omitted = len(all) - control.MaxPeers
		all = all[:control.MaxPeers]
	}
	return append([]control.Peer{}, all...), omitted
}

func addressView(a discovery.Address) control.Address {
	v := control.Address{IP: a.IP, Interface: a.Interface, Stage: a.Stage, Confirmed: a.Confirmed, Evidence: a.Evidence, Rank: a.Rank, RankReason: a.RankReason}
	for _, p := range a.Proofs {
		v.Proofs = append(v.Proofs, control.Proof(p))
	}
	if a.Link != nil {
		l := control.Link(*a.Link)
		v.Link = &l
	}
	return v
}

func peerView(p discovery.Peer) control.Peer {
	return control.Peer{ID: p.ID, Fingerprint: p.Fingerprint.String(), Name: p.Name, Addresses: p.Addresses, Port: p.Port,
		SeenAs: p.SeenAs, Source: p.Source, Sources: p.Sources, WindowOpen: p.WindowOpen, LastSeen: p.LastSeen}
}

func beaconStats(s beacon.Stats, refused uint64) control.BeaconStats {
	return control.BeaconStats{Received: s.Received, Sent: s.Sent, SendErrors: s.SendErrors, SendFailed: s.SendFailed, RateLimited: s.RateLimited,
		Own: s.Own, Dropped: s.Dropped, Joined: s.Joined, PeersRefused: refused}
}

// Reconfigure applies new settings to the running daemon: name, pair
// window, ignored interfaces, log level, the WebRTC settings and the
// inbox limits change live; it returns the settings that changed but need
// a restart.
func (d *Daemon) Reconfigure(s config.Settings) (restart []string) {
	s = config.Complete(s, d.cfg.StateDir)
	old := d.nbrs.Name()
	addrs, _, _ := d.own.Addresses()
	d.nbrs.SetName(s.Name, addrs)
	if old != s.Name {
		d.cfg.Logger.Info("name changed", "from", old, "to", s.Name)
	}
	d.window.SetLifetime(s.PairWindow)
	if d.cfg.LogLevel != nil {
		var lv slog.Level
		if lv.UnmarshalText([]byte(s.LogLevel)) == nil {
			d.cfg.LogLevel.Set(lv)
		}
	}
	if d.ifs.Ignore(s.IgnoreInterfaces) {
		d.cfg.Logger.Info("ignored interfaces changed", "ignore", s.IgnoreInterfaces)
		d.own.Reacquire()
	}
	cur := d.cfg.Settings
	if s.Listen != cur.Listen {
		restart = append(restart, "listen")
	}
	if s.MDNS != cur.MDNS {
		restart = append(restart, "mdns")
	}
	if s.Inbox.Dir != cur.Inbox.Dir {
		restart = append(restart, "inbox")
	}
	d.inbox.SetLimits(s.Inbox.MaxFileMB<<20, s.Inbox.MaxInboxMB<<20)
	d.sess.SetWebRTC(s.WebRTC)
	return restart
}
