package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

const (
	// tellEvery limits how often we tell one peer about one address.
	tellEvery = 30 * time.Second
	// observedTimeout bounds one observation call to a peer.
	observedTimeout = 2 * time.Second
	// browseEvery is how often the daemon browses mDNS for peers; the
	// beacon carries changes faster, mDNS fills gaps (multicast beacon
	// port filtered).
	browseEvery = 15 * time.Second
)

// onBeacon handles a beacon from another device: into the peer table,
// and tell the peer where we see it when it does not seem to know.
func (d *Daemon) onBeacon(ev beacon.Event) {
	d.table.Observe(ev)
	d.tellObserved(ev)
}

// tellObserved is the discovery-failure mitigation: when a peer's packet
// comes from an address the peer does not list as its own, we POST that
// address to the peer's observed endpoint (TLS, pinned to its
// fingerprint), so the peer can confirm it.
func (d *Daemon) tellObserved(ev beacon.Event) {
	pk := ev.Packet
	if pk.Fingerprint.IsZero() || pk.Fingerprint == d.id.Fingerprint || pk.Port == 0 || pk.Type == beacon.TypeGoodbye {
		return
	}
	src := ev.From.Addr()
	if slices.ContainsFunc(pk.Addrs, func(a netip.Addr) bool { return a.WithZone("") == src.WithZone("") }) {
		return // it knows this address
	}
	key := pk.Fingerprint.String() + " " + src.String()
	d.mu.Lock()
	if time.Since(d.told[key]) < tellEvery || d.ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	d.told[key] = time.Now()
	d.mu.Unlock()
	d.goLoop(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, observedTimeout)
		defer cancel()
		if err := d.postObserved(ctx, netip.AddrPortFrom(src, pk.Port), pk.Fingerprint); err != nil {
			d.log.Debug("observed: telling peer failed", "peer", pk.Fingerprint.ID(), "at", src, "err", err)
			return
		}
		d.log.Info("observed: told peer where we see it", "peer", pk.Fingerprint.ID(), "name", pk.Name, "addr", src)
	})
}

func (d *Daemon) postObserved(ctx context.Context, to netip.AddrPort, fp ident.Fingerprint) error {
	body, _ := json.Marshal(ObservedRequest{Addr: to.Addr().WithZone("")})
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dl := tls.Dialer{Config: pinnedConfig(d.id, fp)}
			return dl.DialContext(ctx, "tcp", to.String())
		}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://peer"+PathObserved, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return &httpStatusError{resp.Status}
	}
	return nil
}

type httpStatusError struct{ status string }

func (e *httpStatusError) Error() string { return "peer answered " + e.status }

// onObserved: a peer says it sees us at addr. Confirm it with our own
// self-ping before using it.
func (d *Daemon) onObserved(addr netip.Addr, by ident.Fingerprint) {
	addr = addr.WithZone("")
	d.mu.Lock()
	known := slices.ContainsFunc(d.addrs, func(a discovery.Address) bool { return a.IP.WithZone("") == addr })
	key := "in " + addr.String()
	recent := time.Since(d.told[key]) < time.Second
	if !known && !recent {
		d.told[key] = time.Now()
	}
	d.mu.Unlock()
	if known || recent || d.ctx.Err() != nil {
		return
	}
	d.goLoop(func(ctx context.Context) {
		a, err := d.acq.ConfirmObserved(ctx, addr, by.ID())
		if err != nil {
			d.log.Info("observed: a peer's view of our address did not confirm", "addr", addr, "by", by.ID(), "err", err)
			return
		}
		d.log.Info("observed: address confirmed from a peer's view", "addr", a.IP, "by", by.ID(), "evidence", a.Evidence)
		d.updateAddrs(func() ([]discovery.Address, []discovery.Stage) {
			d.observed[addr] = a
			if slices.ContainsFunc(d.addrs, func(x discovery.Address) bool { return x.IP.WithZone("") == addr }) {
				return d.addrs, d.stages
			}
			return append(slices.Clone(d.addrs), a), d.stages
		})
	})
}

// keepObserved checks the addresses confirmed from peers' observations
// again before an acquisition result is installed (setResult adds those
// still here); those that fail are forgotten.
func (d *Daemon) keepObserved(ctx context.Context, res *discovery.Result) {
	d.mu.Lock()
	obs := make([]discovery.Address, 0, len(d.observed))
	for _, a := range d.observed {
		obs = append(obs, a)
	}
	d.mu.Unlock()
	for _, a := range obs {
		if slices.ContainsFunc(res.Addresses, func(x discovery.Address) bool { return x.IP.WithZone("") == a.IP.WithZone("") }) {
			continue
		}
		if _, err := d.acq.ConfirmObserved(ctx, a.IP, "earlier peer"); err != nil {
			d.mu.Lock()
			delete(d.observed, a.IP.WithZone(""))
			d.mu.Unlock()
		}
	}
}

// watchNetwork re-runs the acquisition and rejoins the beacon groups when
// interfaces or addresses change.
func (d *Daemon) watchNetwork(ctx context.Context) {
	discovery.WatchNetwork(ctx, d.log, func() {
		d.log.Info("network changed; finding own addresses again")
		if d.beacon != nil {
			d.beacon.Refresh()
		}
		d.Reacquire()
	})
}

// browseLoop asks mDNS for peers now and then.
func (d *Daemon) browseLoop(ctx context.Context) {
	for {
		err := discovery.Browse(ctx, d.interfaces, d.log, func(ev beacon.Event) {
			d.table.ObserveFrom(discovery.SourceMDNS, ev)
		})
		if err != nil {
			d.log.Debug("mdns: browse", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(browseEvery):
		}
	}
}
