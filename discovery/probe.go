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
	"sync"
	"sync/atomic"
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
// self-ping would, and says what happened. It reads at most 4 KiB. The
// result names no status code or banner: a prober dials only the
// requester's own address, and says only whether our listener answered.
func DialConfirm(ctx context.Context, target netip.AddrPort, nonce string) ProbeResult {
	res := ProbeResult{Addr: target.Addr()}
	ctx, cancel := context.WithTimeout(ctx, ProbeDialTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return DialClassified(ctx, target, netip.Addr{})
		}}}
	defer client.CloseIdleConnections()
	u := fmt.Sprintf("http://probe%s?nonce=%s&addr=%s", ConfirmPath, nonce, target.Addr().WithZone(""))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		res.Result, res.Error = ProbeError, "bad target"
		return res
	}
	resp, err := client.Do(req)
	if err != nil {
		var de *DialError
		switch {
		case errors.As(err, &de):
			res.Result = de.Outcome
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
			res.Result = ProbeTimeout
		default:
			res.Result = ProbeError
		}
		res.Error = outcomeText[res.Result]
		return res
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		res.Result, res.Error = ProbeOtherHost, outcomeText[ProbeOtherHost]
		return res
	}
	res.Result = ProbeArrived
	return res
}

// outcomeText is the only text a probe result carries.
var outcomeText = map[string]string{
	ProbeTimeout:     "connect timed out",
	ProbeRefused:     "connection refused",
	ProbeProhibited:  "ICMP administratively prohibited",
	ProbeUnreachable: "ICMP unreachable",
	ProbeOtherHost:   "not the pairing listener",
	ProbeError:       "connect failed",
}

// Prober is the device that did a reverse probe.
type Prober struct {
	ID string
	// Trust is TrustPaired, or TrustVerified for a device whose TLS key
	// matched its beacon at the address it was dialled.
	Trust string
}

// ProbeFunc asks an identified device that shares target's link (and,
// off link-local, its subnet) to dial target, from target itself (so
// that the device sees the address is ours), skipping the devices in
// skip. ErrNoProber: no such device.
type ProbeFunc func(ctx context.Context, target ProbeTarget, skip []string) (Prober, ProbeResult, error)

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
// a peer (a round that found none does not hold back the next). While
// some address found no device on its link, it tries again after
// probeEvery, doubling up to probeRetryMax, and from probeEvery again
// after news (a new peer's announce may list that link's address only a
// moment later).
func (p *prober) loop(ctx context.Context) {
	var last time.Time
	var retry time.Duration
	for {
		var again <-chan time.Time
		if retry > 0 {
			again = time.After(retry)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.now:
			retry = 0 // news (a new peer, an address change): start the backoff again
		case <-again:
		}
		if wait := probeEvery - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		asked, missing := p.round(ctx)
		if asked {
			last = time.Now()
		}
		if missing {
			retry = min(max(2*retry, probeEvery), probeRetryMax)
		} else {
			retry = 0
		}
	}
}

// probeOpinions is how many devices a round asks about one address at
// most, while none reached it.
const probeOpinions = 4

// probeRetryMax bounds the wait between rounds for addresses that found
// no device on their link.
const probeRetryMax = 5 * time.Minute

// round asks identified devices to dial every address that no paired
// or pairing device has reached recently, each address by a device on
// its link, and records what arrived. A not-reached from a device that
// is not paired is checked by other devices, up to probeOpinions in
// all, until one reaches it: two that agree move the rank only when
// none reached it. An address no device shares a link with gets no
// probe: no evidence, not a failure. It reports whether a device was asked, and
// whether some address found none.
func (p *prober) round(ctx context.Context) (asked, missing bool) {
	addrs, _, _ := p.own.Addresses()
	now := time.Now()
	var todo []netip.Addr
	for _, a := range addrs {
		if pr, ok := a.latest(func(x Proof) bool { return x.Kind == ProofReached && x.Trusted() }); ok && now.Sub(pr.At) < ReachedFresh/2 {
			continue
		}
		if len(todo) == MaxProbeTargets {
			break
		}
		todo = append(todo, a.IP)
	}
	var anyAsked, anyMissing atomic.Bool
	var wg sync.WaitGroup
	for _, ip := range todo {
		wg.Go(func() {
			var skip []string
			for i := range probeOpinions {
				by, result, ok := p.one(ctx, ip, skip)
				if !ok {
					if i == 0 {
						anyMissing.Store(true)
					}
					return
				}
				anyAsked.Store(true)
				if result == ProbeArrived || by.Trust == TrustPaired || result == ProbeError || result == ProbeOtherHost {
					return
				}
				skip = append(skip, by.ID)
			}
		})
	}
	wg.Wait()
	return anyAsked.Load(), anyMissing.Load()
}

// one has one device dial ip with a fresh nonce and records the outcome.
func (p *prober) one(ctx context.Context, ip netip.Addr, skip []string) (Prober, string, bool) {
	o := p.own
	nonce, arrived, done, err := o.cfg.Acquirer.Confirmer.Expect(ip)
	if err != nil {
		o.cfg.Logger.Debug("reverse probe: not now", "addr", ip, "err", err)
		return Prober{}, "", false
	}
	defer done()
	pctx, cancel := context.WithTimeout(ctx, 2*ProbeDialTimeout+time.Second)
	by, r, err := p.probe(pctx, ProbeTarget{Addr: ip, Nonce: nonce}, skip)
	cancel()
	if err != nil {
		o.cfg.Logger.Debug("reverse probe: no device could probe", "addr", ip, "err", err)
		return Prober{}, "", false
	}
	o.cfg.Logger.Debug("reverse probe", "addr", ip, "by", by.ID, "trust", by.Trust, "result", r.Result)
	if remote, came := arrived(); came {
		o.Reached(ip, remote.Addr(), by.ID, "reverse probe", by.Trust)
		return by, ProbeArrived, true
	}
	switch r.Result {
	case ProbeTimeout, ProbeRefused, ProbeProhibited, ProbeUnreachable:
		o.cfg.Logger.Info("reverse probe: a device could not reach our address", "addr", ip, "by", by.ID, "trust", by.Trust, "result", r.Result)
		o.NotReached(ip, by.ID, by.Trust, r.Result)
	}
	return by, r.Result, true
}

// ErrNoProber: no identified device shares the address's link.
var ErrNoProber = errors.New("no identified device on this address's link")
