package pairing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
)

// ErrNoAddress means no reachable own address is known yet, so a QR code
// would lead nowhere.
var ErrNoAddress = errors.New("no reachable own address yet")

func (d *Daemon) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+control.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSONStatus(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("POST "+control.PathWindow, func(w http.ResponseWriter, r *http.Request) {
		win, err := d.OpenWindow()
		if err != nil {
			ctlError(w, http.StatusServiceUnavailable, fmt.Errorf("%w (run 'pairing addr' to see why)", err))
			return
		}
		writeJSONStatus(w, http.StatusOK, win)
	})
	mux.HandleFunc("GET "+control.PathPeers, func(w http.ResponseWriter, r *http.Request) {
		writeJSONStatus(w, http.StatusOK, d.Paired())
	})
	mux.HandleFunc("DELETE "+control.PathPeers+"/{peer}", func(w http.ResponseWriter, r *http.Request) {
		p, err := Resolve(d.store.List(), r.PathValue("peer"))
		if err != nil {
			ctlError(w, http.StatusNotFound, err)
			return
		}
		if err := d.store.Remove(p.Fingerprint); err != nil {
			ctlError(w, http.StatusInternalServerError, err)
			return
		}
		d.log.Info("unpaired", "peer", p.ID, "name", p.Name)
		writeJSONStatus(w, http.StatusOK, d.paired(p, nil))
	})
	mux.HandleFunc("POST "+control.PathJoin, func(w http.ResponseWriter, r *http.Request) {
		var req control.JoinRequest
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(b, &req)
		}
		if err != nil {
			ctlError(w, http.StatusBadRequest, fmt.Errorf("bad join request: %w", err))
			return
		}
		p, err := ParsePayload(req.URL)
		if err != nil {
			ctlError(w, http.StatusBadRequest, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), DefaultJoinTimeout)
		defer cancel()
		res, err := Join(ctx, p, JoinOptions{Identity: d.id, Store: d.store, Name: d.Name(), Code: req.Code, Beacon: d.cfg.Beacon, Logger: d.log})
		if err != nil {
			ctlError(w, http.StatusBadGateway, err)
			return
		}
		writeJSONStatus(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST "+control.PathSend, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, _ := strconv.ParseInt(q.Get("size"), 10, 64)
		res, err := d.Send(r.Context(), q.Get("peer"), q.Get("kind"), q.Get("name"), size, r.Body)
		if err != nil {
			status := http.StatusBadGateway
			if errors.Is(err, ErrUnknownPeer) || errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrBadFileName) {
				status = http.StatusBadRequest
			}
			ctlError(w, status, err)
			return
		}
		writeJSONStatus(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET "+control.PathInbox, func(w http.ResponseWriter, r *http.Request) {
		items, err := d.cfg.Inbox.List()
		if err != nil {
			ctlError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSONStatus(w, http.StatusOK, items)
	})
	return mux
}

func ctlError(w http.ResponseWriter, status int, err error) {
	writeJSONStatus(w, status, control.ErrorBody{Error: err.Error()})
}

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
	for _, a := range d.ips() {
		if !a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	return out
}

func (d *Daemon) describe(info WindowInfo) (control.Window, error) {
	addrs := d.qrAddrs()
	if len(addrs) == 0 {
		return control.Window{}, ErrNoAddress
	}
	p := Payload{Host: addrs[0], Port: uint16(d.Port()), Fingerprint: d.id.Fingerprint, Secret: info.Secret, Addrs: addrs, Name: d.Name()}
	code, err := Code(info.Secret, time.Now())
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

func (d *Daemon) windowChanged(info WindowInfo) {
	if d.beacon != nil {
		d.beacon.Announce() // window open/closed and the hint travel in beacons
	}
	d.mu.Lock()
	if d.expiry != nil {
		d.expiry.Stop()
	}
	if info.Open {
		// At the end of its lifetime the window reads as closed; say so.
		d.expiry = time.AfterFunc(time.Until(info.Expires), func() { d.windowChanged(WindowInfo{}) })
	}
	d.mu.Unlock()
	if !info.Open {
		d.log.Info("pairing window closed")
		if d.cfg.OnWindow != nil {
			d.cfg.OnWindow(control.Window{}, false)
		}
		return
	}
	win, err := d.describe(info)
	if err != nil {
		d.log.Warn("pairing window open, but no address for a QR code", "err", err)
		return
	}
	d.log.Info("pairing window open", "url", win.URL, "code", win.Code, "expires", win.SecretExpires.Format(time.RFC3339))
	if d.cfg.OnWindow != nil {
		d.cfg.OnWindow(win, true)
	}
}

// Paired lists the paired devices, with whether each is on the LAN now.
func (d *Daemon) Paired() []control.Paired {
	online := map[ident.Fingerprint]bool{}
	for _, p := range d.table.Peers() {
		online[p.Fingerprint] = true
	}
	out := []control.Paired{}
	for _, p := range d.store.List() {
		out = append(out, d.paired(p, online))
	}
	return out
}

func (d *Daemon) paired(p PairedPeer, online map[ident.Fingerprint]bool) control.Paired {
	return PairedView(p, online[p.Fingerprint])
}

// PairedView is a stored peer as `pairing peers` shows it.
func PairedView(p PairedPeer, online bool) control.Paired {
	addrs := p.Addresses
	if addrs == nil {
		addrs = []netip.Addr{}
	}
	return control.Paired{ID: p.ID, Name: p.Name, Fingerprint: p.Fingerprint.String(), Kind: p.Kind,
		PairedAt: p.PairedAt, LastSeen: p.LastSeen, Addresses: addrs, Port: p.Port, Online: online}
}
