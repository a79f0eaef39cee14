package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
)

// ErrNoAddress means no reachable own address is known yet, so a QR code
// would lead nowhere.
var ErrNoAddress = errors.New("no reachable own address yet")

// controlMux is the control API: each endpoint calls one part, or the
// daemon where it takes several.
func (d *Daemon) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+control.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		pairing.WriteJSON(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("POST "+control.PathWindow, func(w http.ResponseWriter, r *http.Request) {
		var host netip.Addr
		if a := r.URL.Query().Get("address"); a != "" {
			var err error
			if host, err = netip.ParseAddr(a); err != nil {
				ctlError(w, http.StatusBadRequest, fmt.Errorf("bad address %q: %w", a, err))
				return
			}
		}
		win, err := d.OpenWindow(r.URL.Query().Get("link") == "1", host)
		if errors.Is(err, ErrNotConfirmed) {
			ctlError(w, http.StatusBadRequest, err)
			return
		}
		if err != nil {
			ctlError(w, http.StatusServiceUnavailable, fmt.Errorf("%w (run 'pairing addr' to see why)", err))
			return
		}
		pairing.WriteJSON(w, http.StatusOK, win)
	})
	mux.HandleFunc("GET "+control.PathPeers, func(w http.ResponseWriter, r *http.Request) {
		pairing.WriteJSON(w, http.StatusOK, d.Paired())
	})
	mux.HandleFunc("DELETE "+control.PathPeers+"/{peer}", func(w http.ResponseWriter, r *http.Request) {
		p, err := pairing.Resolve(d.store.List(), r.PathValue("peer"))
		if err != nil {
			ctlError(w, http.StatusNotFound, err)
			return
		}
		if err := d.store.Remove(p.Fingerprint); err != nil {
			ctlError(w, http.StatusInternalServerError, err)
			return
		}
		d.sess.Unpaired(p.Fingerprint) // its open page hears it now
		d.cfg.Logger.Info("unpaired", "peer", p.ID, "name", p.Name)
		pairing.WriteJSON(w, http.StatusOK, pairing.PairedView(p, false))
	})
	mux.HandleFunc("PATCH "+control.PathPeers+"/{peer}", func(w http.ResponseWriter, r *http.Request) {
		var req control.RenameRequest
		b, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err == nil {
			err = json.Unmarshal(b, &req)
		}
		if err == nil {
			err = beacon.ValidName(req.Name)
		}
		if err != nil {
			ctlError(w, http.StatusBadRequest, fmt.Errorf("bad rename request: %w", err))
			return
		}
		p, err := pairing.Resolve(d.store.List(), r.PathValue("peer"))
		if err != nil {
			ctlError(w, http.StatusNotFound, err)
			return
		}
		old := p.Name
		p.Name = req.Name
		if err := d.store.Put(p); err != nil {
			ctlError(w, http.StatusInternalServerError, err)
			return
		}
		d.cfg.Logger.Info("renamed", "peer", p.ID, "from", old, "name", p.Name)
		pairing.WriteJSON(w, http.StatusOK, pairing.PairedView(p, false))
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
		p, err := pairing.ParsePayload(req.URL)
		if err != nil {
			ctlError(w, http.StatusBadRequest, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), pairing.DefaultJoinTimeout)
		defer cancel()
		res, err := pairing.Join(ctx, p, pairing.JoinOptions{Identity: d.id, Store: d.store, Name: d.nbrs.Name(), Code: req.Code, Beacon: d.cfg.Beacon, Port: uint16(d.Port()), Logger: d.cfg.Logger})
		if err != nil {
			ctlError(w, http.StatusBadGateway, err)
			return
		}
		pairing.WriteJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST "+control.PathSend, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, _ := strconv.ParseInt(q.Get("size"), 10, 64)
		p, err := pairing.Resolve(d.store.List(), q.Get("peer"))
		var res *control.SendResult
		if err == nil {
			res, err = d.sess.Send(r.Context(), p, q.Get("kind"), q.Get("name"), size, r.Body, q.Get("path"))
		}
		if err != nil {
			status := http.StatusBadGateway
			if errors.Is(err, pairing.ErrUnknownPeer) || errors.Is(err, pairing.ErrAmbiguous) || errors.Is(err, pairing.ErrBadFileName) {
				status = http.StatusBadRequest
			}
			ctlError(w, status, err)
			return
		}
		pairing.WriteJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET "+control.PathInbox, func(w http.ResponseWriter, r *http.Request) {
		items, err := d.inbox.List()
		if err != nil {
			ctlError(w, http.StatusInternalServerError, err)
			return
		}
		pairing.WriteJSON(w, http.StatusOK, items)
	})
	return mux
}

func ctlError(w http.ResponseWriter, status int, err error) {
	pairing.WriteJSON(w, status, control.ErrorBody{Error: err.Error()})
}

// Paired lists the paired devices, with whether each is on the LAN now.
func (d *Daemon) Paired() []control.Paired {
	online := map[ident.Fingerprint]bool{}
	for _, p := range d.nbrs.Peers() {
		online[p.Fingerprint] = true
	}
	for _, fp := range d.sess.PagesOpen() { // a phone with its page open
		online[fp] = true
	}
	out := []control.Paired{}
	for _, p := range d.store.List() {
		out = append(out, pairing.PairedView(p, online[p.Fingerprint]))
	}
	return out
}
