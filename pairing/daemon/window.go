package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

// OpenWindow opens a pairing window (or returns the open one) and
// describes it for a QR code; for a link (without the secret), the window
// takes the 6-digit code too.
func (d *Daemon) OpenWindow(link bool, host netip.Addr) (control.Window, error) {
	addrs := qrAddrs(d.own.IPs())
	if len(addrs) == 0 {
		return control.Window{}, ErrNoAddress
	}
	if host.IsValid() && !slices.Contains(addrs, host.Unmap()) {
		return control.Window{}, fmt.Errorf("%w: %s; the QR code can lead with %v", ErrNotConfirmed, host, addrs)
	}
	prev := d.window.Info().Closed
	// One call, so the window's change is told (logged, announced, the
	// QR code described) once.
	open := d.window.Open
	if link {
		open = d.window.OpenForLink
	}
	info := open()
	w, err := d.describe(info, host.Unmap())
	w.PreviousClosed = prev
	return w, err
}

// ErrNotConfirmed: qr --address names an address that is not one of the
// confirmed ones.
var ErrNotConfirmed = errors.New("not one of this device's confirmed addresses")

// qrAddrs are the confirmed addresses a phone can use: IPv6 link-local
// ones need a zone that only this device knows; IPv4 link-local ones
// (169.254/16, a cable without DHCP) need none.
func qrAddrs(ips []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range ips {
		if !(a.Is6() && a.IsLinkLocalUnicast()) {
			out = append(out, a)
		}
	}
	return out
}

// describe is the QR code of an open window: our best address, port,
// fingerprint, the secret, the other addresses and the name.
func (d *Daemon) describe(info pairing.WindowInfo, host netip.Addr) (control.Window, error) {
	addrs := qrAddrs(d.own.IPs())
	if len(addrs) == 0 {
		return control.Window{}, ErrNoAddress
	}
	if i := slices.Index(addrs, host); i > 0 {
		addrs = append([]netip.Addr{host}, slices.Delete(slices.Clone(addrs), i, i+1)...)
	}
	p := pairing.Payload{Host: addrs[0], Port: uint16(d.Port()), Fingerprint: d.id.Fingerprint, Secret: info.Secret, Addrs: addrs, Name: d.nbrs.Name()}
	var code string
	if info.Code {
		var err error
		if code, err = pairing.Code(info.Secret, time.Now()); err != nil {
			return control.Window{}, err
		}
	}
	own, _, _ := d.own.Addresses()
	link := p
	link.Secret = nil
	short := p
	short.Addrs, short.Name = nil, ""
	return control.Window{
		URL: p.URL(), QRURL: short.URL(), LinkURL: link.URL(), Fingerprint: d.id.Fingerprint.String(), ID: d.id.ID(), Name: p.Name,
		SecretExpires: info.Expires, Code: code, Addresses: addrs, Port: d.Port(), Networks: networks(own, addrs[0]),
	}, nil
}

// networks are the LANs with a working address a phone can use (not a
// tunnel, virtual link or link without carrier, nothing a paired device
// could not reach): one entry per interface, its best address, the one
// of first (the code's) first. all are the own addresses, best first.
func networks(all []discovery.Address, first netip.Addr) []control.Network {
	i := slices.IndexFunc(all, func(a discovery.Address) bool { return a.IP.Unmap() == first })
	if i < 0 || all[i].Rank >= discovery.RankDemoted {
		return nil // the code leads with an address outside these
	}
	out := []control.Network{{Interface: all[i].Interface, Address: first}}
	for _, a := range all {
		ip := a.IP.Unmap()
		if a.Rank >= discovery.RankDemoted || ip.Is6() && ip.IsLinkLocalUnicast() ||
			slices.ContainsFunc(out, func(n control.Network) bool { return n.Interface == a.Interface }) {
			continue
		}
		out = append(out, control.Network{Interface: a.Interface, Address: ip})
	}
	return out
}

// windowChanged: the window opened, closed or got a new secret. The
// beacon carries whether it is open and the hint; serve --open shows the
// new QR code.
func (d *Daemon) windowChanged(info pairing.WindowInfo) {
	d.nbrs.Announce()
	if !info.Open {
		if info.Closed != "" {
			d.cfg.Logger.Warn("pairing window closed", "why", info.Closed)
		} else {
			d.cfg.Logger.Info("pairing window closed")
		}
		if d.cfg.OnWindow != nil {
			d.cfg.OnWindow(control.Window{PreviousClosed: info.Closed}, false)
		}
		return
	}
	win, err := d.describe(info, netip.Addr{})
	if err != nil {
		d.cfg.Logger.Warn("pairing window open, but no address for a QR code", "err", err)
		return
	}
	// Never the URL or the code: they carry the secret, and the journal
	// has more readers than the control socket.
	d.cfg.Logger.Info("pairing window open", "fingerprint", win.Fingerprint, "addresses", win.Addresses, "port", win.Port,
		"takes_code", info.Code, "expires", win.SecretExpires.Format(time.RFC3339))
	if d.cfg.OnWindow != nil {
		d.cfg.OnWindow(win, true)
	}
}
