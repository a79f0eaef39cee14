package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/ident"
)

const (
	// signalTimeout bounds one signalling call to one address.
	signalTimeout = 3 * time.Second
	// maxAnswer bounds the SDP answer a peer may send.
	maxAnswer = 256 << 10
)

// postPinned POSTs body to path on the device fp at to, over TLS pinned to
// its fingerprint with id as the client certificate.
func postPinned(ctx context.Context, id *Identity, fp ident.Fingerprint, to netip.AddrPort, path string, body []byte) (*http.Response, []byte, error) {
	return postPinnedFrom(ctx, id, fp, netip.Addr{}, to, path, body)
}

// postPinnedFrom is postPinned from the local address from (when valid).
func postPinnedFrom(ctx context.Context, id *Identity, fp ident.Fingerprint, from netip.Addr, to netip.AddrPort, path string, body []byte) (*http.Response, []byte, error) {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			nd := &net.Dialer{}
			if from.IsValid() {
				nd.LocalAddr = &net.TCPAddr{IP: from.AsSlice(), Zone: from.Zone()}
			}
			dl := tls.Dialer{NetDialer: nd, Config: pinnedConfig(id, fp)}
			return dl.DialContext(ctx, "tcp", to.String())
		}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://peer"+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return resp, b, err
}

// TellObserved tells the paired or unpaired device fp, at to, that we see
// it at to's address (its observed endpoint).
func TellObserved(ctx context.Context, id *Identity, to netip.AddrPort, fp ident.Fingerprint) error {
	body, _ := json.Marshal(ObservedRequest{Addr: to.Addr().WithZone("")})
	resp, _, err := postPinned(ctx, id, fp, to, PathObserved, body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("peer answered %s", resp.Status)
	}
	return nil
}

// RequestProbe asks the device fp, at to, to dial targets (our addresses,
// on our listener port) and returns what it saw: a reverse probe. The
// request comes from the local address from: the device dials only the
// address a request came from.
func RequestProbe(ctx context.Context, id *Identity, from netip.Addr, to netip.AddrPort, fp ident.Fingerprint, targets []discovery.ProbeTarget) ([]discovery.ProbeResult, error) {
	body, _ := json.Marshal(ProbeRequest{Targets: targets})
	resp, b, err := postPinnedFrom(ctx, id, fp, from, to, PathProbe, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("peer answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var pr ProbeResponse
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, fmt.Errorf("probe answer: %w", err)
	}
	return pr.Results, nil
}

// Signal POSTs a WebRTC offer to the connect endpoint of the device fp at
// all of addrs at once (TLS pinned to fp, so only fp can answer), and
// returns the first answer. A refusal from the device is final.
func Signal(ctx context.Context, id *Identity, fp ident.Fingerprint, addrs []netip.AddrPort, offer string) (string, error) {
	body, _ := json.Marshal(ConnectMessage{SDP: offer})
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	type answer struct {
		sdp   string
		err   error
		final bool // the device itself answered
	}
	got := make(chan answer, len(addrs))
	for _, a := range addrs {
		go func() {
			resp, b, err := postPinned(ctx, id, fp, a, PathConnect, body)
			switch {
			case err != nil:
				got <- answer{err: fmt.Errorf("%s: %v", a, err)}
			case resp.StatusCode != http.StatusOK:
				var er ErrorResponse
				json.Unmarshal(b, &er)
				if er.Error == "" {
					er.Error = resp.Status
				}
				got <- answer{err: fmt.Errorf("the device refused the connection: %s", er.Error), final: true}
			default:
				var m ConnectMessage
				if err := json.Unmarshal(b, &m); err != nil || m.SDP == "" {
					got <- answer{err: fmt.Errorf("bad answer from %s", a), final: true}
					return
				}
				got <- answer{sdp: m.SDP, final: true}
			}
		}()
	}
	var errs []error
	for range addrs {
		r := <-got
		if r.final {
			return r.sdp, r.err
		}
		errs = append(errs, r.err)
	}
	return "", fmt.Errorf("device unreachable: %w", errors.Join(errs...))
}

// ErrNoDirect means the direct TLS path to a device did not connect (no
// address answered in time, or the device does not speak it): WebRTC may
// still get through.
var ErrNoDirect = errors.New("no direct TLS connection to the device")

// DirectTimeout bounds the wait for the direct path's connection: a LAN
// answers in milliseconds, and WebRTC is the fallback.
const DirectTimeout = 1500 * time.Millisecond

// DialPinned connects to fp at all of addrs at once and keeps the first
// TLS connection that completes (pinned to fp, with our certificate); the
// others are closed. ErrNoDirect: none did, within DirectTimeout.
func DialPinned(ctx context.Context, id *Identity, fp ident.Fingerprint, addrs []netip.AddrPort) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DirectTimeout)
	defer cancel()
	type result struct {
		c   *tls.Conn
		err error
	}
	got := make(chan result, len(addrs))
	for _, a := range addrs {
		go func() {
			if err := dialable(a.Addr()); err != nil {
				got <- result{err: err}
				return
			}
			dl := tls.Dialer{Config: pinnedConfig(id, fp)}
			c, err := dl.DialContext(ctx, "tcp", a.String())
			if err != nil {
				got <- result{err: fmt.Errorf("%s: %v", a, err)}
				return
			}
			got <- result{c: c.(*tls.Conn)}
		}()
	}
	var first *tls.Conn
	var errs []error
	for range addrs {
		r := <-got
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case first == nil:
			first = r.c
			cancel() // the others give up
		default:
			r.c.Close()
		}
	}
	if first == nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDirect, errors.Join(errs...))
	}
	return first, nil
}

// TransferResponse is the receiver's answer to a transfer.
type TransferResponse struct {
	SHA256 string `json:"sha256"`
}
