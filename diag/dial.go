package diag

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lanpairing/pairing/discovery"
)

// Outcomes of a TCP connect. A silent drop (timeout) and an ICMP
// unreachable are missing answers; a refusal (a reset) and an ICMP
// "administratively prohibited" are answers, and the last is positive
// evidence of a packet filter.
const (
	DialOK          = "ok"
	DialTimeout     = "timeout"
	DialRefused     = "refused"
	DialProhibited  = "prohibited"
	DialUnreachable = "unreachable"
	DialError       = "error"
)

// DialResult is what one TCP connect met.
type DialResult struct {
	Target  string  `json:"target"`
	Outcome string  `json:"outcome"`
	Error   string  `json:"error,omitempty"`
	RTTms   float64 `json:"rtt_ms,omitempty"`
	// ICMP is the ICMP error the kernel queued for the connect, if any
	// ("type 3 code 13 from 10.1.0.2").
	ICMP string `json:"icmp,omitempty"`
}

// dialTCP connects to target within d (and ctx) and says what the
// connect met: discovery's classified dial, which reads the ICMP error's
// type and code (the kernel turns "host unreachable" and
// "administratively prohibited" into the same errno).
func dialTCP(ctx context.Context, target netip.AddrPort, d time.Duration) (net.Conn, DialResult) {
	res := DialResult{Target: target.String()}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	conn, err := discovery.DialClassified(ctx, target, netip.Addr{})
	if err == nil {
		res.Outcome, res.RTTms = DialOK, msSince(start)
		return conn, res
	}
	var de *discovery.DialError
	if !errors.As(err, &de) {
		res.Outcome, res.Error = DialError, err.Error()
		return nil, res
	}
	res.Error = de.Err.Error()
	if de.ICMP {
		res.ICMP = fmt.Sprintf("type %d code %d from %s", de.Type, de.Code, de.From)
	}
	switch de.Outcome {
	case discovery.ProbeRefused:
		res.Outcome = DialRefused
	case discovery.ProbeProhibited:
		res.Outcome = DialProhibited
		if de.ICMP {
			res.Error = "ICMP administratively prohibited from " + de.From.String()
		}
	case discovery.ProbeUnreachable:
		res.Outcome = DialUnreachable
	case discovery.ProbeTimeout:
		res.Outcome, res.Error = DialTimeout, "connect timed out"
	default:
		res.Outcome = DialError
		if errors.Is(err, unix.EPERM) {
			res.Outcome = DialProhibited // a local filter's reject of our own output
		}
	}
	return nil, res
}
