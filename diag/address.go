package diag

import (
	"context"
	"errors"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
)

// PreferredFacts is the preferred-address step's record: stage 1 of the
// own-address acquisition (which address the routes pick for the
// outside, and whether our own listener gets a nonce sent to it).
type PreferredFacts struct {
	Routes []discovery.RouteProbe `json:"routes"`
	Found  []discovery.Address    `json:"found,omitempty"`
	Error  string                 `json:"error,omitempty"`
	// NotAddressable: a route exists, bind worked, and the self-ping did
	// not arrive (only this host's own filter can drop it: it never
	// leaves the host).
	NotAddressable bool `json:"not_addressable,omitempty"`
	// NoRoute: no route to the outside.
	NoRoute bool `json:"no_route,omitempty"`
}

func gatherPreferred(ctx context.Context, e *env, _ Facts) Facts {
	out := &PreferredFacts{}
	if e.acq == nil {
		out.Error = "no listener: " + e.lnErr.Error()
		return Facts{Preferred: out}
	}
	st, found := e.acq.RunStage(ctx, discovery.StagePreferred)
	out.Found = found
	if m, ok := st.Details.(map[string]any); ok {
		out.Routes, _ = m["routes"].([]discovery.RouteProbe)
	}
	if len(found) == 0 {
		out.Error = firstLine(st.Error)
		out.NotAddressable = errors.Is(st.Err(), discovery.ErrNotAddressable)
		out.NoRoute = errors.Is(st.Err(), discovery.ErrNoRoute) && !out.NotAddressable
	}
	return Facts{Preferred: out}
}

// ListenerFacts is the listener step's record: the temporary listener
// the self-pings dial, and the daemon's port.
type ListenerFacts struct {
	DiagPort   int    `json:"diag_port,omitempty"`
	BindError  string `json:"bind_error,omitempty"`
	DaemonPort int    `json:"daemon_port,omitempty"`
}

func gatherListener(ctx context.Context, e *env, in Facts) Facts {
	out := &ListenerFacts{}
	if e.lnErr != nil {
		out.BindError = e.lnErr.Error()
	} else {
		out.DiagPort = e.confirmer.Port
	}
	if in.Daemon != nil && in.Daemon.Status != nil {
		out.DaemonPort = in.Daemon.Status.Port
	}
	return Facts{Listener: out}
}

// SelfReachFacts is the self-reachability step's record: stage 2, every
// candidate address dialled on our own listener.
type SelfReachFacts struct {
	Candidates []discovery.Candidate `json:"candidates"`
	Skipped    []discovery.Skipped   `json:"skipped,omitempty"`
	Found      []discovery.Address   `json:"found,omitempty"`
	Error      string                `json:"error,omitempty"`
	// NoCandidates: no private, link-local or ULA address on any
	// interface that is up.
	NoCandidates bool `json:"no_candidates,omitempty"`
	Port         int  `json:"port,omitempty"`
}

func gatherSelfReach(ctx context.Context, e *env, _ Facts) Facts {
	out := &SelfReachFacts{}
	if e.acq == nil {
		out.Error = "no listener: " + e.lnErr.Error()
		return Facts{SelfReach: out}
	}
	out.Port = e.confirmer.Port
	st, found := e.acq.RunStage(ctx, discovery.StageSweep)
	out.Found = found
	if m, ok := st.Details.(map[string]any); ok {
		out.Candidates, _ = m["candidates"].([]discovery.Candidate)
		out.Skipped, _ = m["skipped"].([]discovery.Skipped)
	}
	if len(found) == 0 {
		out.Error = firstLine(st.Error)
		out.NoCandidates = errors.Is(st.Err(), discovery.ErrNoCandidates)
	}
	return Facts{SelfReach: out}
}

// MulticastFacts is the multicast step's record: each interface and
// family joined, sent and looped back (beacon port and group).
type MulticastFacts struct {
	Port    int                 `json:"port"`
	Results []beacon.LoopResult `json:"results"`
	Error   string              `json:"error,omitempty"`
}

// loopbackWait bounds the multicast self-test: a looped-back packet
// arrives within a millisecond; the rest is margin for a busy machine.
const loopbackWait = 700 * time.Millisecond

func gatherMulticast(ctx context.Context, e *env, _ Facts) Facts {
	// Loopback waits for its probes until ctx ends: end it before the
	// step's own deadline, so what was learnt is returned.
	ctx, cancel := context.WithTimeout(ctx, loopbackWait)
	defer cancel()
	res, err := beacon.Loopback(ctx, beacon.Config{Interfaces: e.cfg.Interfaces})
	out := &MulticastFacts{Port: beacon.DefaultPort, Results: res}
	if err != nil {
		out.Error = err.Error()
	}
	return Facts{Multicast: out}
}
