package diag

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
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
// the next one still runs.
func TestRunNeverStopsEarly(t *testing.T) {
	saved := steps
	defer func() { steps = saved }()
	steps = []step{
		{"panics", time.Second, func(r *runner, ctx context.Context, s *Step) { panic("boom") }},
		{"hangs", 50 * time.Millisecond, func(r *runner, ctx context.Context, s *Step) { time.Sleep(200 * time.Millisecond) }},
		{"fine", time.Second, func(r *runner, ctx context.Context, s *Step) { s.Summary = "ok" }},
	}
	var progress []string
	rep := Run(context.Background(), Config{
		Interfaces: func() ([]net.Interface, error) { return nil, errors.New("none") },
		Progress:   func(s Step) { progress = append(progress, s.Name) },
	})
	if rep.OK || len(rep.Steps) != 3 || rep.Steps[2].Status != Pass {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(rep.Steps[0].Error, "boom") || !strings.Contains(rep.Steps[1].Error, "timed out") {
		t.Fatalf("steps %+v", rep.Steps)
	}
	if strings.Join(progress, ",") != "panics,hangs,fine" {
		t.Fatalf("progress %v", progress)
	}
	b, _ := json.Marshal(rep)
	for _, k := range []string{`"ok":false`, `"started":`, `"duration_ms":`, `"steps":[{"name":"panics","status":"fail"`, `"error":`, `"hint":`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
}

func TestTextReport(t *testing.T) {
	var buf bytes.Buffer
	WriteStep(&buf, Step{Name: "peers", Status: Fail, DurationMS: 1500, Error: "no other device answered", Hint: "use the QR code"}, false)
	WriteStep(&buf, Step{Name: "clock", Status: Pass, DurationMS: 0.2, Summary: "2026-11-21T22:00:00Z"}, false)
	WriteSummary(&buf, &Report{OK: false, DurationMS: 2500, Steps: []Step{{Status: Fail}, {Status: Pass}}})
	want := "✗ peers                 1500 ms  no other device answered\n    hint: use the QR code\n" +
		"✓ clock                    0 ms  2026-11-21T22:00:00Z\n\n" +
		"2 steps: 1 passed, 0 warnings, 1 failed, 0 skipped in 2.5 s; see the hints above\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	WriteStep(&buf, Step{Name: "x", Status: Warn}, true)
	if !strings.HasPrefix(buf.String(), "\x1b[33m!\x1b[0m") {
		t.Fatalf("colour: %q", buf.String())
	}
}

func TestRoutesParsing(t *testing.T) {
	dir := t.TempDir()
	old4, old6 := procRoute, procIPv6Route
	defer func() { procRoute, procIPv6Route = old4, old6 }()
	procRoute, procIPv6Route = dir+"/route", dir+"/ipv6_route"
	os.WriteFile(procRoute, []byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"+
		"wg0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"+
		"eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"), 0o644)
	os.WriteFile(procIPv6Route, []byte("00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n"+
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n"), 0o644)
	defs := defaultRoutes()
	if len(defs) != 2 || defs[0] != (Route{"v4", "10.0.0.1", "wg0"}) || defs[1] != (Route{"v6", "fe80::1", "eth0"}) {
		t.Fatalf("default routes %+v", defs)
	}
	all := ipv4Routes()
	if len(all) != 2 || all[1].Prefix.String() != "192.168.1.0/24" || all[1].Interface != "eth0" {
		t.Fatalf("routes %+v", all)
	}
}

// TestUDPBufferCheck: a kernel limit below what transfers need is a
// warning with the sysctl to run; enough is no warning.
func TestUDPBufferCheck(t *testing.T) {
	limit := func(n int) func() (int, error) { return func() (int, error) { return n, nil } }
	var s Step
	d := map[string]any{}
	checkUDPBuffers(&s, d, limit(212992))
	if s.Status != Warn || !strings.Contains(s.Error, "limited to 208 KiB") || !strings.Contains(s.Hint, "net.core.rmem_max=4194304") || d["udp_buffer_limit"] != 212992 {
		t.Fatalf("limited: %+v %v", s, d)
	}
	s = Step{}
	checkUDPBuffers(&s, d, limit(4<<20))
	if s.Status != "" || s.Error != "" {
		t.Fatalf("enough: %+v", s)
	}
	checkUDPBuffers(&s, d, func() (int, error) { return 0, errors.New("no /proc") })
	if s.Status != "" || !strings.Contains(d["udp_buffer_limit"].(string), "no /proc") {
		t.Fatalf("unknown: %+v %v", s, d)
	}
}

// TestNeighbourStep: a neighbour table that overflows during the run
// fails the step with the sysctl to run; one nearly full is a warning;
// one that overflowed only before the run is fine.
func TestNeighbourStep(t *testing.T) {
	saved := readNeighbourTables
	defer func() { readNeighbourTables = saved }()
	var now []NeighbourTable
	readNeighbourTables = func() ([]NeighbourTable, error) { return now, nil }
	r := &runner{neigh: []NeighbourTable{{"ARP", 40, 1024, 5}, {"NDP", 20, 1024, 0}}}
	run := func(tables ...NeighbourTable) Step {
		now = tables
		s := Step{Status: Pass}
		stepNeighbours(r, context.Background(), &s)
		return s
	}
	if s := run(NeighbourTable{"ARP", 40, 1024, 5}, NeighbourTable{"NDP", 20, 1024, 0}); s.Status != Pass || s.Summary != "ARP 40 of 1024, NDP 20 of 1024 entries (the whole machine's)" {
		t.Fatalf("overflowed before the run only: %+v", s)
	}
	if s := run(NeighbourTable{"ARP", 1008, 1024, 5}, NeighbourTable{"NDP", 20, 1024, 0}); s.Status != Warn || !strings.Contains(s.Error, "ARP table is nearly full") {
		t.Fatalf("nearly full: %+v", s)
	}
	s := run(NeighbourTable{"ARP", 1024, 1024, 5}, NeighbourTable{"NDP", 1024, 1024, 7})
	if s.Status != Fail || !strings.Contains(s.Error, "NDP 7 times") || strings.Contains(s.Error, "ARP") || !strings.Contains(s.Hint, "net.ipv6.neigh.default.gc_thresh3=8192") {
		t.Fatalf("full during the run: %+v", s)
	}
	readNeighbourTables = func() ([]NeighbourTable, error) { return nil, errors.New("no netlink") }
	if s := run(); s.Status != Skip || !strings.Contains(s.Error, "no netlink") {
		t.Fatalf("unreadable: %+v", s)
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
