package diag

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/lanpairing/pairing/pairing/rtc"
)

// Finding is one conclusion drawn from the facts. It names the facts it
// rests on ("step.field[key]" paths into the steps' details), and a
// Cause only when the facts give positive evidence for it.
type Finding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"` // info, warn or fail
	// Step is the step whose verdict the finding sets.
	Step string `json:"step"`
	// Cause is the blamed cause (Cause…), empty when the facts do not
	// decide one.
	Cause string   `json:"cause,omitempty"`
	Text  string   `json:"text"`
	Hint  string   `json:"hint,omitempty"`
	Facts []string `json:"facts"`
}

// Severities of a Finding.
const (
	SevInfo = "info"
	SevWarn = "warn"
	SevFail = "fail"
)

// Causes a finding may blame, each only with positive evidence.
const (
	// CauseHostFilter: this host's packet filter (a rule read from the
	// ruleset, a self-ping dropped inside the host, an ICMP prohibited or
	// a reset from our address while our listener listens, or a trusted
	// peer on the same link that could not connect).
	CauseHostFilter = "host-filter"
	// CausePeerFilter: a packet filter on a peer or on the path (an ICMP
	// prohibited, or a peer that answers ARP but not TCP).
	CausePeerFilter = "peer-filter"
	// CauseVPN: a VPN or tunnel route, as the kernel's lookup shows.
	CauseVPN = "vpn"
	// CauseIsolation: client isolation (a peer's broadcasts arrive, its
	// unicast does not, while the gateway answers).
	CauseIsolation = "client-isolation"
	// CauseRouter: a peer answers from another subnet, through a gateway.
	CauseRouter = "router"
	// CauseMulticastFilter: the network filters multicast (not concluded
	// from a missing answer alone; kept for the vocabulary).
	CauseMulticastFilter = "multicast-filter"
	// CauseMTU: full-size packets stall where small ones pass.
	CauseMTU = "mtu"
)

// analysis collects findings and summaries while the rules run.
type analysis struct {
	f        Facts
	findings []Finding
	summary  map[string]string
	skip     map[string]string
}

func (a *analysis) add(f Finding) {
	if slices.ContainsFunc(a.findings, func(x Finding) bool { return x.ID == f.ID && x.Text == f.Text }) {
		return // one conclusion, said once
	}
	a.findings = append(a.findings, f)
}

// fact names a fact: the step's facts field, with a key.
func fact(step, field, key string) string {
	s := step + "." + field
	if key != "" {
		s += "[" + key + "]"
	}
	return s
}

// conclusions are the rules of the analysis, one per step, in the
// order of the steps: a later rule may read what an earlier one found.
var conclusions = []func(*analysis){
	concludeInterfaces, concludeDaemon, concludeRoutes, concludeFilter, concludePreferred, concludeListener,
	concludeSelfReach, concludeMulticast, concludePaired, concludePeers, concludePeerReach, concludeMDNS,
	concludeReached, concludeWebRTC, concludeNeighbours, concludeClock,
}

// Analyze draws the verdicts of every step and the findings from the
// facts: one place, facts in, conclusions out.
func Analyze(f Facts) ([]Step, []Finding) {
	a := &analysis{f: f, summary: map[string]string{}, skip: map[string]string{}}
	for _, conclude := range conclusions {
		conclude(a)
	}
	runs := f.Runs
	if len(runs) == 0 {
		for _, s := range steps {
			runs = append(runs, StepRun{Name: s.name})
		}
	}
	for _, r := range runs {
		switch {
		case r.Panic != "":
			a.add(Finding{ID: "internal-error", Severity: SevFail, Step: r.Name, Text: "internal error: " + r.Panic,
				Hint: "a bug in diag: please report it with this output", Facts: []string{fact(r.Name, "error", "")}})
		case r.TimedOut:
			a.add(Finding{ID: "timed-out", Severity: SevFail, Step: r.Name, Text: fmt.Sprintf("timed out after %s", r.Timeout),
				Hint: "something on the network did not answer in time; the other steps still ran", Facts: []string{fact(r.Name, "duration_ms", "")}})
		}
	}
	out := []Step{}
	if a.findings == nil {
		a.findings = []Finding{}
	}
	for _, r := range runs {
		s := Step{Name: r.Name, Status: Pass, DurationMS: r.DurationMS, Summary: a.summary[r.Name], Details: f.details(r.Name)}
		if s.Details == nil || isNilFacts(s.Details) {
			s.Details = nil
		}
		worst := ""
		for _, x := range a.findings {
			if x.Step != r.Name || rank(x.Severity) <= rank(worst) {
				continue
			}
			worst = x.Severity
			s.Error, s.Hint = x.Text, x.Hint
		}
		switch worst {
		case SevFail:
			s.Status = Fail
		case SevWarn:
			s.Status = Warn
		default:
			s.Error, s.Hint = "", ""
			if why, ok := a.skip[r.Name]; ok {
				s.Status = Skip
				s.Summary = why
			}
		}
		out = append(out, s)
	}
	return out, a.findings
}

func rank(sev string) int {
	switch sev {
	case SevInfo:
		return 1
	case SevWarn:
		return 2
	case SevFail:
		return 3
	}
	return 0
}

// isNilFacts reports whether v is a nil pointer in an interface.
func isNilFacts(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// plural is "1 peer", "2 peers".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// list joins names: "a", "a and b", "a, b and c".
func list(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func concludeWebRTC(a *analysis) {
	w := a.f.WebRTC
	if w == nil {
		return
	}
	count := map[string]int{}
	for _, c := range w.Candidates {
		count[c.Type]++
	}
	a.summary[StepWebRTC] = fmt.Sprintf("candidates: %d host, %d srflx, %d relay", count["host"], count["srflx"], count["relay"])
	if w.Servers == 0 {
		a.summary[StepWebRTC] += "; no STUN/TURN server configured"
	}
	for _, t := range w.TURN {
		if t.Relay != "" {
			a.summary[StepWebRTC] += fmt.Sprintf("; %s relays at %s", t.URL, t.Relay)
		}
	}
	if w.UDPBufferError == "" && w.UDPBufferLimit < rtc.UDPBuffer {
		a.add(Finding{ID: "udp-buffers", Severity: SevWarn, Step: StepWebRTC,
			Text:  fmt.Sprintf("UDP socket buffers are limited to %d KiB (net.core.rmem_max), %d KiB wanted", w.UDPBufferLimit>>10, rtc.UDPBuffer>>10),
			Hint:  "file transfers will drop packets and run at about half speed; " + rtc.BufferHint,
			Facts: []string{fact(StepWebRTC, "udp_buffer_limit", "")}})
	}
	switch {
	case w.Error != "":
		a.add(Finding{ID: "webrtc-error", Severity: SevFail, Step: StepWebRTC, Text: w.Error, Facts: []string{fact(StepWebRTC, "error", "")}})
		return
	case count["host"] == 0:
		a.add(Finding{ID: "no-host-candidate", Severity: SevFail, Step: StepWebRTC, Text: "no host candidate",
			Hint: "WebRTC found no usable interface address", Facts: []string{fact(StepWebRTC, "candidates", "")}})
		return
	}
	for _, t := range w.TURN {
		if t.Error == "" {
			continue
		}
		hint := "the TURN server did not answer: check its address and that UDP to it is allowed"
		if t.Unauthorized {
			hint = "the TURN server refused the credentials: check turn-user and turn-password, or turn-secret (it must equal coturn's static-auth-secret), and that the clock is right"
		}
		a.add(Finding{ID: "turn-failed", Severity: SevFail, Step: StepWebRTC, Text: fmt.Sprintf("TURN %s: %s", t.URL, t.Error), Hint: hint,
			Facts: []string{fact(StepWebRTC, "turn", t.URL)}})
	}
}

// neighbourHint is the fix, for both families.
const neighbourHint = "the ARP and NDP tables are shared by every network namespace on this machine (containers, VMs, test namespaces); raise their limits: " +
	"sysctl -w net.ipv4.neigh.default.gc_thresh2=4096 net.ipv4.neigh.default.gc_thresh3=8192 net.ipv6.neigh.default.gc_thresh2=4096 net.ipv6.neigh.default.gc_thresh3=8192"

func concludeNeighbours(a *analysis) {
	n := a.f.Neighbours
	if n == nil {
		return
	}
	if n.Error != "" && len(n.Now) == 0 {
		a.skip[StepNeighbours] = "cannot read the kernel's neighbour tables: " + n.Error
		return
	}
	var parts, full, near []string
	for _, t := range n.Now {
		parts = append(parts, fmt.Sprintf("%s %d of %d", t.Family, t.Entries, t.Limit))
		for _, b := range n.Start {
			if b.Family == t.Family && t.Full > b.Full {
				full = append(full, fmt.Sprintf("%s %d times", t.Family, t.Full-b.Full))
			}
		}
		if t.Limit > 0 && t.Entries*10 >= t.Limit*9 {
			near = append(near, t.Family)
		}
	}
	a.summary[StepNeighbours] = strings.Join(parts, ", ") + " entries (the whole machine's)"
	switch {
	case len(full) > 0:
		a.add(Finding{ID: "neighbour-table-full", Severity: SevFail, Step: StepNeighbours,
			Text:  "the kernel's neighbour table was full during this run (" + strings.Join(full, ", ") + "): packets to devices it had no entry for were dropped",
			Hint:  neighbourHint,
			Facts: []string{fact(StepNeighbours, "start", ""), fact(StepNeighbours, "now", "")}})
	case len(near) > 0:
		a.add(Finding{ID: "neighbour-table-near-full", Severity: SevWarn, Step: StepNeighbours,
			Text:  "the kernel's " + strings.Join(near, " and ") + " table is nearly full: new devices will soon be unreachable",
			Hint:  neighbourHint,
			Facts: []string{fact(StepNeighbours, "now", "")}})
	}
}

func concludeClock(a *analysis) {
	c := a.f.Clock
	if c == nil {
		return
	}
	a.summary[StepClock] = c.Now.UTC().Format(time.RFC3339)
	floor := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if c.Now.Before(floor) || c.Now.Year() > 2100 {
		a.add(Finding{ID: "clock-wrong", Severity: SevFail, Step: StepClock, Text: "the system clock is wrong: " + c.Now.UTC().Format(time.RFC3339),
			Hint: "pairing windows and TURN credentials depend on the time: set the clock (enable NTP)", Facts: []string{fact(StepClock, "now", "")}})
	}
}
