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

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
	"github.com/lanpairing/pairing/pairing/session"
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
		if r.URL.Query().Get("current") == "1" && !d.window.Info().Open {
			// A live view of the open window never opens a new one.
			pairing.WriteJSON(w, http.StatusNotFound, control.ErrorBody{Error: "no pairing window is open", Reason: control.ReasonWindowClosed})
			return
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
		pairing.WriteJSON(w, http.StatusOK, PairedView(p, false))
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
		pairing.WriteJSON(w, http.StatusOK, PairedView(p, false))
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
		pairing.WriteJSON(w, http.StatusOK, JoinView(res))
	})
	mux.HandleFunc("POST "+control.PathSend, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, _ := strconv.ParseInt(q.Get("size"), 10, 64)
		p, err := pairing.Resolve(d.store.List(), q.Get("peer"))
		var res *session.SendResult
		if err == nil {
			res, err = d.sess.Send(r.Context(), p, q.Get("kind"), q.Get("name"), size, r.Body, q.Get("path"))
		}
		if err != nil {
			status := http.StatusBadGateway
			if errors.Is(err, pairing.ErrUnknownPeer) || errors.Is(err, pairing.ErrAmbiguous) || errors.Is(err, pairing.ErrBadFileName) {
				status = http.StatusBadRequest
			}
			if errors.Is(err, rtc.ErrResumeMismatch) {
				// The client sends the file again from its start.
				pairing.WriteJSON(w, http.StatusConflict, control.ErrorBody{Error: err.Error(), Reason: control.ReasonResumeMismatch})
				return
			}
			ctlError(w, status, err)
			return
		}
		pairing.WriteJSON(w, http.StatusOK, sendView(res))
	})
	mux.HandleFunc("GET "+control.PathInbox, func(w http.ResponseWriter, r *http.Request) {
		items, err := d.inbox.List()
		if err != nil {
			ctlError(w, http.StatusInternalServerError, err)
			return
		}
		pairing.WriteJSON(w, http.StatusOK, inboxView(items))
	})
	mux.HandleFunc("GET "+control.PathInboxFile, func(w http.ResponseWriter, r *http.Request) {
		f, err := d.inbox.Open(r.URL.Query().Get("name"))
		if err != nil {
			ctlError(w, http.StatusNotFound, err)
			return
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, f)
	})
	mux.HandleFunc("DELETE "+control.PathInbox, func(w http.ResponseWriter, r *http.Request) {
		c, err := d.inbox.Clear()
		if err != nil {
			ctlError(w, http.StatusInternalServerError, err)
			return
		}
		d.cfg.Logger.Info("inbox cleared", "files", c.Files, "bytes", c.Bytes, "texts", c.Texts)
		pairing.WriteJSON(w, http.StatusOK, clearedView(c))
	})
	return mux
}

func ctlError(w http.ResponseWriter, status int, err error) {
	var reason string
	switch {
	case errors.Is(err, pairing.ErrUnknownPeer):
		reason = control.ReasonUnknownPeer
	case errors.Is(err, pairing.ErrAmbiguous):
		reason = control.ReasonAmbiguousPeer
	case errors.Is(err, session.ErrPageClosed):
		reason = control.ReasonPageClosed
	case errors.Is(err, ErrNotConfirmed):
		reason = control.ReasonNotConfirmed
	case errors.Is(err, ErrNoAddress):
		reason = control.ReasonNoAddress
	case errors.Is(err, rtc.ErrRefused):
		reason = control.ReasonRefused
	default:
		reason = pairing.KnownReason(err)
	}
	pairing.WriteJSON(w, status, control.ErrorBody{Error: err.Error(), Reason: reason})
}

// online is the one definition of a paired device being online now: a
// computer whose beacon or mDNS answer was heard within the discovery
// cache's lifetime (3 announce intervals: heard, the peers of the
// neighbour table), or a phone whose page holds a live connection to this
// daemon (its data channel open: pages). 'pairing peers' and 'pairing
// status' take it from here, through Paired and Status.
func online(heard []discovery.Peer, store *pairing.Store, pages []ident.Fingerprint) map[ident.Fingerprint]bool {
	on := map[ident.Fingerprint]bool{}
	for _, p := range heard {
		if _, paired := store.Get(p.Fingerprint); paired {
			on[p.Fingerprint] = true
		}
	}
	for _, fp := range pages {
		on[fp] = true
	}
	return on
}

// Paired lists the paired devices, with whether each is online (online).
func (d *Daemon) Paired() []control.Paired {
	on := online(d.nbrs.Peers(), d.store, d.sess.PagesOpen())
	out := []control.Paired{}
	for _, p := range d.store.List() {
		out = append(out, PairedView(p, on[p.Fingerprint]))
	}
	return out
}
