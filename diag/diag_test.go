package diag

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTimeoutsBoundTheRun: no step may take longer than the whole, and the
// whole, every timeout hit, stays within MaxDuration.
func TestTimeoutsBoundTheRun(t *testing.T) {
	var sum time.Duration
	for _, s := range steps {
		if s.timeout <= 0 || s.timeout > MaxDuration {
			t.Errorf("step %s: timeout %s", s.name, s.timeout)
		}
		sum += s.timeout
	}
	if sum > MaxDuration {
		t.Fatalf("step timeouts add up to %s > %s", sum, MaxDuration)
	}
}

// TestRunNeverStopsEarly: a step that panics or overruns is recorded and
// the next one still runs; what the overrunning step returns late goes
// nowhere (the next step saw no facts of it, and the report has none).
func TestRunNeverStopsEarly(t *testing.T) {
	saved := steps
	defer func() { steps = saved }()
	late := make(chan struct{})
	var sawLate bool
	steps = []step{
		{"panics", time.Second, func(ctx context.Context, e *env, in Facts) Facts { panic("boom") }},
		{StepClock, 50 * time.Millisecond, func(ctx context.Context, e *env, in Facts) Facts {
			<-ctx.Done()
			time.Sleep(100 * time.Millisecond)
			defer close(late)
			return Facts{Clock: &ClockFacts{Now: time.Unix(1, 0)}}
		}},
		{"fine", time.Second, func(ctx context.Context, e *env, in Facts) Facts {
			<-late
			sawLate = in.Clock != nil
			return Facts{}
		}},
	}
	var progress []string
	rep := Run(context.Background(), Config{
		Interfaces: func() ([]net.Interface, error) { return nil, errors.New("none") },
		Progress:   func(name string, _ float64) { progress = append(progress, name) },
	})
	if rep.OK || len(rep.Steps) != 3 || rep.Steps[2].Status != Pass {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(rep.Steps[0].Error, "boom") || !strings.Contains(rep.Steps[1].Error, "timed out") {
		t.Fatalf("steps %+v", rep.Steps)
	}
	if sawLate || rep.Steps[1].Details != nil {
		t.Fatalf("the late facts of the step that overran were used: %v %+v", sawLate, rep.Steps[1])
	}
	if strings.Join(progress, ",") != "panics,clock,fine" {
		t.Fatalf("progress %v", progress)
	}
	b, _ := json.Marshal(rep)
	for _, k := range []string{`"ok":false`, `"started":`, `"duration_ms":`, `"steps":[{"name":"panics","status":"fail"`, `"error":`, `"hint":`, `"findings":[{"id":"internal-error"`, `"facts":["panics.error"]`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
}

// TestTextReport: marks, one column for every step name (the longest,
// "reached from outside", included), plurals, and the facts under each
// finding.
func TestTextReport(t *testing.T) {
	var buf bytes.Buffer
	WriteStep(&buf, Step{Name: "peers", Status: Fail, DurationMS: 1500, Error: "no other device answered", Hint: "use the QR code"}, false)
	WriteStep(&buf, Step{Name: "clock", Status: Pass, DurationMS: 0.2, Summary: "2026-11-21T22:00:00Z"}, false)
	WriteStep(&buf, Step{Name: StepReached, Status: Skip, DurationMS: 3, Summary: "no daemon"}, false)
	WriteSummary(&buf, &Report{OK: false, DurationMS: 2500, Steps: []Step{{Status: Fail}, {Status: Pass}, {Status: Warn}}})
	want := "✗ peers                   1500 ms  no other device answered\n    hint: use the QR code\n" +
		"✓ clock                      0 ms  2026-11-21T22:00:00Z\n" +
		"– reached from outside       3 ms  no daemon\n\n" +
		"3 steps: 1 passed, 1 warning, 1 failed, 0 skipped in 2.5 s; see the hints above\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	WriteStep(&buf, Step{Name: "x", Status: Warn}, true)
	if !strings.HasPrefix(buf.String(), "\x1b[33m!\x1b[0m") {
		t.Fatalf("colour: %q", buf.String())
	}
	buf.Reset()
	WriteReport(&buf, &Report{OK: true, Steps: []Step{{Name: StepPeers, Status: Warn, Error: "e", Hint: "h"}},
		Findings: []Finding{{ID: "x", Severity: SevWarn, Step: StepPeers, Text: "e", Hint: "h", Facts: []string{"peers.peers"}},
			{ID: "y", Severity: SevInfo, Step: StepPeers, Text: "n", Facts: []string{"mdns.found"}}}}, false)
	for _, w := range []string{"    facts: peers.peers\n", "    note: n\n      facts: mdns.found\n", "1 step: 0 passed, 1 warning"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, buf.String())
		}
	}
	if strings.Count(buf.String(), "hint: h") != 1 {
		t.Errorf("a hint printed twice:\n%s", buf.String())
	}
}

// TestPrintable: names from elsewhere cannot carry control characters
// into the report.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{"laptop": "laptop", "a\x1b[2Jb": `a\x1b[2Jb`, "x\ny": `x\ny`, "bad\xffutf": `bad\xffutf`, "é\u202e": `é\u202e`} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNeighbourTableMessage: the fields of an RTM_NEWNEIGHTBL message as
// the kernel lays them out; the per-interface messages and garbage are
// no table.
func TestNeighbourTableMessage(t *testing.T) {
	attr := func(typ uint16, v []byte) []byte {
		b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	config := make([]byte, 36)
	binary.NativeEndian.PutUint32(config[4:], 77)
	stats := make([]byte, 88)
	binary.NativeEndian.PutUint64(stats[80:], 9142)
	msg := append(make([]byte, 4), attr(ndtaName, []byte("arp_cache\x00"))...)
	msg = append(msg, attr(ndtaThresh, binary.NativeEndian.AppendUint32(nil, 1024))...)
	msg = append(msg, attr(ndtaConfig, config)...)
	msg = append(msg, attr(ndtaStats, stats)...)
	if got, ok := parseNeighbourTable(msg); !ok || got != (NeighbourTable{"ARP", 77, 1024, 9142}) {
		t.Fatalf("%+v %v", got, ok)
	}
	perDevice := append(make([]byte, 4), attr(ndtaName, []byte("arp_cache\x00"))...)
	for _, m := range [][]byte{perDevice, nil, {1, 2}, append(make([]byte, 4), 0xff, 0xff, 1)} {
		if got, ok := parseNeighbourTable(m); ok {
			t.Errorf("%x read as %+v", m, got)
		}
	}
}

// TestNeighbourTablesOfThisKernel: the real tables, from this namespace
// (the daemon's tests read them from theirs).
func TestNeighbourTablesOfThisKernel(t *testing.T) {
	got, err := neighbourTablesOfKernel()
	if err != nil || len(got) == 0 || got[0].Family != "ARP" || got[0].Limit <= 0 {
		t.Fatalf("%+v %v", got, err)
	}
}
