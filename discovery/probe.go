package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Reverse probes: a peer dials our candidate addresses, on our listener's
// port, with nonces we chose, so that an address counts as reached only
// when a connection from another host really arrived there. A firewall
// rule on the LAN interface, which the self-ping over loopback never
// meets, shows up here.
const (
	// MaxProbeTargets bounds the addresses one probe request names.
	MaxProbeTargets = 8
	// ProbeDialTimeout bounds each dial of a reverse probe.
	ProbeDialTimeout = time.Second
	// probeEvery spaces the rounds of reverse probes this device asks for.
	probeEvery = 3 * time.Second
)

// Results of one probed address.
const (
	ProbeArrived = "arrived" // our listener answered the nonce
	ProbeTimeout = "timeout" // the connect was silently dropped
	ProbeRefused = "refused" // something sent a reset
	// ProbeProhibited: an ICMP "administratively prohibited" came back
	// (a filter's reject, firewalld's default): positive evidence of a
	// filter.
	ProbeProhibited = "prohibited"
	// ProbeUnreachable: an ICMP host or network unreachable came back
	// (no route, no neighbour).
	ProbeUnreachable = "unreachable"
	ProbeOtherHost   = "other-host" // something else answered there
	ProbeDenied      = "denied"     // the prober refused to dial it (not on its link)
	ProbeError       = "error"
)

// ProbeTarget is one address a peer is asked to dial, with its nonce.
type ProbeTarget struct {
	Addr  netip.Addr `json:"addr"`
	Nonce string     `json:"nonce"`
}

// ProbeResult is what the prober saw for one target.
type ProbeResult struct {
	Addr   netip.Addr `json:"addr"`
	Result string     `json:"result"`
	Error  string     `json:"error,omitempty"`
}

// DialConfirm is the prober's side: it dials target with the nonce, as a
// self-ping would, and says what happened. It reads at most 4 KiB.
func DialConfirm(ctx context.Context, target netip.AddrPort, nonce string) ProbeResult {
	res := ProbeResult{Addr: target.Addr()}
	ctx, cancel := context.WithTimeout(ctx, ProbeDialTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target.String())
		}}}
	defer client.CloseIdleConnections()
	u := fmt.Sprintf("http://probe%s?nonce=%s&addr=%s", ConfirmPath, nonce, target.Addr().WithZone(""))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		res.Result, res.Error = ProbeError, err.Error()
		return res
	}
	resp, err := client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			res.Result, res.Error = ProbeTimeout, "connect timed out"
		case errors.Is(err, syscall.ECONNREFUSED):
			res.Result, res.Error = ProbeRefused, "connection refused"
		default:
			res.Result, res.Error = ProbeError, err.Error()
		}
		return res
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		res.Result, res.Error = ProbeOtherHost, "answered "+resp.Status
		return res
	}
	res.Result = ProbeArrived
	return res
}

// ProbeFunc asks a peer to dial targets; it returns who probed (a device
// ID) and what the peer saw.
type ProbeFunc func(ctx context.Context, targets []ProbeTarget) (by string, results []ProbeResult, err error)

// prober runs the rounds of reverse probes of Own's addresses.
type prober struct {
	own   *Own
	probe ProbeFunc
	now   chan struct{}
}

// soon asks for a round.
func (p *prober) soon() {
	select {
	case p.now <- struct{}{}:
	default:
	}
}

// loop runs a round after soon, at most one per probeEvery that reached
// a peer (a round that found none does not hold back the next).
func (p *prober) loop(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.now:
		}
		if wait := probeEvery - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if p.round(ctx) {
			last = time.Now()
		}
	}
}

// round asks a peer to dial every address that no other host has
// reached recently, and records what arrived: reached, or not-reached
// when the connect was dropped or refused while the self-ping passed. It
// reports whether a peer was asked.
func (p *prober) round(ctx context.Context) bool {
	o := p.own
	addrs, _, _ := o.Addresses()
	now := time.Now()
	var targets []ProbeTarget
	waits := map[netip.Addr]func() (netip.AddrPort, bool){}
	for _, a := range addrs {
		if pr, ok := a.proofOf(ProofReached); ok && now.Sub(pr.At) < ReachedFresh/2 {
			continue
		}
		if len(targets) == MaxProbeTargets {
			break
		}
		nonce, arrived, done, err := o.cfg.Acquirer.Confirmer.Expect(a.IP)
		if err != nil {
			break
		}
		defer done()
		targets = append(targets, ProbeTarget{Addr: a.IP, Nonce: nonce})
		waits[a.IP] = arrived
	}
	if len(targets) == 0 {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 2*ProbeDialTimeout+time.Second)
	by, results, err := p.probe(pctx, targets)
	cancel()
	if err != nil {
		o.cfg.Logger.Debug("reverse probe: no peer could probe", "err", err)
		return !errors.Is(err, ErrNoProber)
	}
	for _, r := range results {
		arrived, ok := waits[r.Addr]
		if !ok {
			continue // not an address we asked about
		}
		if remote, came := arrived(); came {
			o.Reached(r.Addr, remote.Addr(), by, "reverse probe")
			continue
		}
		switch r.Result {
		case ProbeTimeout, ProbeRefused:
			o.cfg.Logger.Info("reverse probe: a peer could not reach our address", "addr", r.Addr, "by", by, "result", r.Result)
			o.NotReached(r.Addr, by, r.Result)
		}
	}
	return true
}

// ErrNoProber: no peer on our link to ask for a reverse probe.
var ErrNoProber = errors.New("no peer on our link")
