// Package diag is the network diagnostics suite: a fixed list of steps run
// in series, each with its own timeout, each recorded whatever happens,
// so a person can see why pairing does not work on their network.
package diag

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// Step statuses.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
	Skip = "skip"
)

// Step is the record of one step.
type Step struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	// Summary is the key finding in a few words.
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
	// Hint names the likely cause and the fix.
	Hint    string `json:"hint,omitempty"`
	Details any    `json:"details,omitempty"`
}

// Report is a whole run.
type Report struct {
	OK         bool      `json:"ok"`
	Started    time.Time `json:"started"`
	DurationMS float64   `json:"duration_ms"`
	Steps      []Step    `json:"steps"`
}

// Config is what the suite needs to know about this device.
type Config struct {
	// Socket is the daemon's control socket; StateDir its state directory
	// (for the own fingerprint and the paired devices without a daemon).
	Socket   string
	StateDir string
	// WebRTC has the STUN and TURN servers, and TURN credentials: static
	// (TURNUser, TURNPassword) or minted from TURNSecret.
	WebRTC pairing.WebRTCSettings
	// Interfaces lists interfaces; nil means net.Interfaces.
	Interfaces func() ([]net.Interface, error)
	Logger     *slog.Logger
	// Progress is called after each step, for live output.
	Progress func(Step)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// UDPBufferLimit is the kernel's limit on socket buffers; nil means
	// net.core.rmem_max.
	UDPBufferLimit func() (int, error)
}

// step is one entry of the fixed list.
type step struct {
	name    string
	timeout time.Duration
	run     func(*runner, context.Context, *Step)
}

// steps is the suite, in order; each step is a function of the runner. Each timeout bounds its step; together
// they bound the whole run (TestTimeoutsBoundTheRun keeps the sum at or
// below MaxDuration).
var steps = []step{
	{"interfaces", 500 * time.Millisecond, stepInterfaces},
	{"routes", 500 * time.Millisecond, stepRoutes},
	{"preferred address", 1200 * time.Millisecond, stepPreferred},
	{"listener", 500 * time.Millisecond, stepListener},
	{"self-reachability", 1200 * time.Millisecond, stepSelfReach},
	{"multicast", 1 * time.Second, stepMulticast},
	{"peers", 3500 * time.Millisecond, stepPeers},
	{"peer reachability", 2500 * time.Millisecond, stepPeerReach},
	{"mdns", 1500 * time.Millisecond, stepMdns},
	{"daemon", 1 * time.Second, stepDaemon},
	{"reached from outside", 1 * time.Second, stepReached},
	{"paired peers", 1500 * time.Millisecond, stepPaired},
	{"webrtc", 3 * time.Second, stepWebrtc},
	{"neighbour table", 300 * time.Millisecond, stepNeighbours},
	{"clock", 300 * time.Millisecond, stepClock},
}

// MaxDuration bounds a whole run, every timeout hit.
const MaxDuration = 22 * time.Second

// runner carries what steps share: the temporary listener, the acquirer.
type runner struct {
	cfg  Config
	log  *slog.Logger
	self ident.Fingerprint

	ln        net.Listener
	srv       *http.Server
	confirmer *discovery.Confirmer
	acq       *discovery.Acquirer
	// links is the kernel's facts about the interfaces, read at start.
	links map[string]discovery.LinkFacts
	// found are the peers the peers step found.
	found []discovery.Peer

	// neigh is the kernel's neighbour tables when the run began.
	neigh []NeighbourTable
	// status is the daemon's, asked once.
	status struct {
		once sync.Once
		st   *control.Status
		err  error
	}
}

// Run runs every step in series and returns the report. It never stops
// early: a step that fails, panics or overruns its timeout is recorded,
// and the next one runs.
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
	r := &runner{cfg: cfg, log: cfg.Logger}
	r.links, _ = discovery.ReadLinks()
	r.neigh, _ = readNeighbourTables()
	defer r.close()
	rep := &Report{OK: true, Started: cfg.Now()}
	start := time.Now()
	for _, st := range steps {
		s := r.runStep(ctx, st)
		if s.Status == Fail {
			rep.OK = false
		}
		rep.Steps = append(rep.Steps, s)
		if cfg.Progress != nil {
			cfg.Progress(s)
		}
	}
	rep.DurationMS = msSince(start)
	return rep
}

func (r *runner) runStep(ctx context.Context, st step) Step {
	r.log.Info("diag: step", "step", st.name, "timeout", st.timeout)
	ctx, cancel := context.WithTimeout(ctx, st.timeout)
	defer cancel()
	start := time.Now()
	done := make(chan Step, 1)
	go func() {
		s := Step{Name: st.name, Status: Pass}
		defer func() {
			if p := recover(); p != nil {
				s.Status, s.Error = Fail, fmt.Sprintf("internal error: %v", p)
			}
			done <- s
		}()
		st.run(r, ctx, &s)
	}()
	var s Step
	select {
	case s = <-done:
	case <-ctx.Done():
		// The step overran: record it and go on (it ends on its own;
		// it only holds sockets of this run).
		s = Step{Name: st.name, Status: Fail, Error: fmt.Sprintf("timed out after %s", st.timeout),
			Hint: "something on the network did not answer in time; the other steps still ran"}
	}
	s.DurationMS = msSince(start)
	lv := slog.LevelInfo
	if s.Status == Fail || s.Status == Warn {
		lv = slog.LevelWarn
	}
	r.log.Log(ctx, lv, "diag: step done", "step", s.Name, "status", s.Status, "summary", s.Summary, "err", s.Error, "hint", s.Hint, "duration_ms", s.DurationMS)
	return s
}

func (r *runner) close() {
	if r.srv != nil {
		r.srv.Close()
	}
}

// daemonStatus asks the running daemon once (cached for later steps).
func (r *runner) daemonStatus(ctx context.Context) (*control.Status, error) {
	r.status.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
		defer cancel()
		r.status.st, r.status.err = control.NewClient(r.cfg.Socket).Status(ctx)
	})
	return r.status.st, r.status.err
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// StepCount is the number of steps in the suite.
func StepCount() int { return len(steps) }
