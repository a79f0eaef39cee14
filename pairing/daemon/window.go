package daemon

import (
	"net/netip"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
)

// OpenWindow opens a pairing window (or returns the open one) and
// describes it for a QR code.
func (d *Daemon) OpenWindow() (control.Window, error) {
	if len(d.qrAddrs()) == 0 {
		return control.Window{}, ErrNoAddress
	}
	return d.describe(d.window.Open())
}

// qrAddrs are the confirmed addresses a phone can use: link-local ones
// need a zone that only this device knows.
func (d *Daemon) qrAddrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range d.own.IPs() {
		if !a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	return out
}

// describe is the QR code of an open window: our best address, port,
// fingerprint, the secret, the other addresses and the name.
func (d *Daemon) describe(info pairing.WindowInfo) (control.Window, error) {
	addrs := d.qrAddrs()
	if len(addrs) == 0 {
		return control.Window{}, ErrNoAddress
	}
	p := pairing.Payload{Host: addrs[0], Port: uint16(d.Port()), Fingerprint: d.id.Fingerprint, Secret: info.Secret, Addrs: addrs, Name: d.nbrs.Name()}
	code, err := pairing.Code(info.Secret, time.Now())
	if err != nil {
		return control.Window{}, err
	}
	link := p
	link.Secret = nil
	return control.Window{
		URL: p.URL(), LinkURL: link.URL(), Fingerprint: d.id.Fingerprint.String(), ID: d.id.ID(), Name: p.Name,
		SecretExpires: info.Expires, Code: code, Addresses: addrs, Port: d.Port(),
	}, nil
}

// windowChanged: the window opened, closed or got a new secret. The
// beacon carries whether it is open and the hint; serve --open shows the
// new QR code.
func (d *Daemon) windowChanged(info pairing.WindowInfo) {
	d.nbrs.Announce()
	if !info.Open {
		d.cfg.Logger.Info("pairing window closed")
		if d.cfg.OnWindow != nil {
			d.cfg.OnWindow(control.Window{}, false)
		}
		return
	}
	win, err := d.describe(info)
	if err != nil {
		d.cfg.Logger.Warn("pairing window open, but no address for a QR code", "err", err)
		return
	}
	d.cfg.Logger.Info("pairing window open", "url", win.URL, "code", win.Code, "expires", win.SecretExpires.Format(time.RFC3339))
	if d.cfg.OnWindow != nil {
		d.cfg.OnWindow(win, true)
	}
}
