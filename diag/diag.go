// Package diag is the network diagnostics suite: a fixed list of steps
// run in series, each gathering typed facts within its own timeout, and
// one analysis over all the facts that draws the verdicts, hints and
// findings a person reads to see why pairing does not work.
package diag

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// Step statuses.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
	Skip = "skip"
)

// Step is the record of one step: what it gathered (Details, its facts)
// and the verdict the analysis drew over all facts.
type Step struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	// Summary is the key facts in a few words.
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
	// Hint says what to do; it names a cause only when the facts prove it.
	Hint string `json:"hint,omitempty"`
	// Details are the step's facts (a *…Facts of this package).
	Details any `json:"details,omitempty"`
}

// Report is a whole run.
type Report struct {
	OK         bool      `json:"ok"`
	Started    time.Time `json:"started"`
	DurationMS float64   `json:"duration_ms"`
	Steps      []Step    `json:"steps"`
	// Findings are the conclusions, each naming the facts it rests on.
	Findings []Finding `json:"findings"`
}

// Config is what the suite needs to know about this device.
type Config struct {
	// Socket is the daemon's control socket; StateDir its state directory
	// (for the own fingerprint and the paired devices without a daemon).
	Socket   string
	StateDir string
	// WebRTC has the STUN and TURN servers, and TURN credentials: static
	// (TURNUser, TURNPassword) or minted from TURNSecret.
	WebRTC config.WebRTCSettings
	// Interfaces lists interfaces; nil means net.Interfaces.
	Interfaces func() ([]net.Interface, error)
	Logger     *slog.Logger
	// Progress is called after each step has gathered its facts (the
	// verdicts come at the end, from all of them).
	Progress func(name string, durationMS float64)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// UDPBufferLimit is the kernel's limit on socket buffers; nil means
	// net.core.rmem_max.
	UDPBufferLimit func() (int, error)
}

// step is one entry of the fixed list. gather sees the facts of the
// steps before it (those that finished or timed out) and returns its own
// facts in a Facts value with only its field set.
type step struct {
	name    string
	timeout time.Duration
	gather  func(ctx context.Context, e *env, in Facts) Facts
}

// Step names.
const (
	StepInterfaces = "interfaces"
	StepDaemon     = "daemon"
	StepRoutes     = "routes"
	StepFilter     = "packet filter"
	StepPreferred  = "preferred address"
	StepListener   = "listener"
	StepSelfReach  = "self-reachability"
	StepMulticast  = "multicast"
	StepPaired     = "paired peers"
	StepPeers      = "peers"
	StepPeerReach  = "peer reachability"
	StepMDNS       = "mdns"
	StepReached    = "reached from outside"
	StepWebRTC     = "webrtc"
	StepNeighbours = "neighbour table"
	StepClock      = "clock"
)

// steps is the suite, in order. Each timeout bounds its step; together
// they bound the whole run (TestTimeoutsBoundTheRun keeps the sum at or
// below MaxDuration).
var steps = []step{
	{StepInterfaces, 500 * time.Millisecond, gatherInterfaces},
	{StepDaemon, 1 * time.Second, gatherDaemon},
	{StepRoutes, 700 * time.Millisecond, gatherRoutes},
	{StepFilter, 500 * time.Millisecond, gatherFilter},
	{StepPreferred, 1200 * time.Millisecond, gatherPreferred},
	{StepListener, 300 * time.Millisecond, gatherListener},
	{StepSelfReach, 1200 * time.Millisecond, gatherSelfReach},
	{StepMulticast, 1 * time.Second, gatherMulticast},
	{StepPaired, 1500 * time.Millisecond, gatherPaired},
	{StepPeers, 2 * time.Second, gatherPeers},
	{StepPeerReach, 3 * time.Second, gatherPeerReach},
	{StepMDNS, 1500 * time.Millisecond, gatherMDNS},
	{StepReached, 1 * time.Second, gatherReached},
	{StepWebRTC, 3 * time.Second, gatherWebRTC},
	{StepNeighbours, 300 * time.Millisecond, gatherNeighbours},
	{StepClock, 300 * time.Millisecond, gatherClock},
}

// MaxDuration bounds a whole run, every timeout hit.
const MaxDuration = 22 * time.Second

// Run runs every step in series and returns the report. It never stops
// early: a step that fails, panics or overruns its timeout is recorded,
// and the next one runs. A step that overran is left behind: what it
// returns later goes nowhere.
func Run(ctx context.Context, cfg Config) *Report {
	if cfg.Interfaces == nil {
		cfg.Interfaces = net.Interfaces
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UDPBufferLimit == nil {
		cfg.UDPBufferLimit = rtc.UDPBufferLimit
	}
	e := newEnv(cfg)
	defer e.close()
	rep := &Report{Started: cfg.Now()}
	start := time.Now()
	var facts Facts
	var runs []StepRun
	for _, st := range steps {
		got, run := e.runStep(ctx, st, facts)
		facts.merge(got)
		runs = append(runs, run)
		if cfg.Progress != nil {
			cfg.Progress(run.Name, run.DurationMS)
		}
	}
	facts.Runs = runs
	rep.Steps, rep.Findings = Analyze(facts)
	rep.OK = true
	for _, s := range rep.Steps {
		rep.OK = rep.OK && s.Status != Fail
	}
	for _, f := range rep.Findings {
		lv := slog.LevelInfo
		if f.Severity != SevInfo {
			lv = slog.LevelWarn
		}
		e.log.Log(ctx, lv, "diag: finding", "id", f.ID, "step", f.Step, "text", f.Text, "facts", f.Facts)
	}
	rep.DurationMS = msSince(start)
	return rep
}

// StepRun is how one step ran.
type StepRun struct {
	Name       string  `json:"name"`
	DurationMS float64 `json:"duration_ms"`
	// TimedOut: the step did not return its facts within its timeout.
	TimedOut bool          `json:"timed_out,omitempty"`
	Timeout  time.Duration `json:"-"`
	// Panic is the step's internal error, if it had one.
	Panic string `json:"panic,omitempty"`
}

// runStep runs one step in a goroutine of its own and takes its facts
// from a channel, if they come before the deadline. The step gets a copy
// of the facts so far; facts once returned are never written again.
func (e *env) runStep(ctx context.Context, st step, in Facts) (Facts, StepRun) {
	e.log.Info("diag: step", "step", st.name, "timeout", st.timeout)
	ctx, cancel := context.WithTimeout(ctx, st.timeout)
	defer cancel()
	start := time.Now()
	type result struct {
		facts Facts
		panic string
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if p := recover(); p != nil {
				res = result{panic: fmt.Sprint(p)}
			}
			done <- res
		}()
		res.facts = st.gather(ctx, e, in)
	}()
	run := StepRun{Name: st.name, Timeout: st.timeout}
	var got Facts
	select {
	case res := <-done:
		got, run.Panic = res.facts, res.panic
	case <-ctx.Done():
		run.TimedOut = true
	}
	run.DurationMS = msSince(start)
	e.log.Info("diag: step done", "step", st.name, "duration_ms", run.DurationMS, "timed_out", run.TimedOut, "panic", run.Panic)
	return got, run
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// StepCount is the number of steps in the suite.
func StepCount() int { return len(steps) }

// StepNames are the steps' names, in order.
func StepNames() []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.name)
	}
	return out
}
