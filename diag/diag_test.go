package diag

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// neighStat is /proc/net/stat/arp_cache as the kernel writes it, for two
// CPUs.
func neighStat(entries, full0, full1 int) string {
	return "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n" +
		fmt.Sprintf("%08x 00005fc4 00006381 00000005   00062c90 0001ddab 00000027   00000000         00000000         00000000         00001238       00000000            %08x\n", entries, full0) +
		fmt.Sprintf("%08x 0000559e 000051e1 00000003   0004a4ee 000153eb 0000001e   00000000         00000000         000003e0         0000125f       00000000            %08x\n", entries, full1)
}

// TestNeighbourStep: a neighbour table that overflows during the run
// fails the step with the sysctl to run; one nearly full is a warning;
// one that overflowed only before the run is fine.
func TestNeighbourStep(t *testing.T) {
	dir := t.TempDir()
	oldStat, oldSys := procNeighStat, procNeighSys
	defer func() { procNeighStat, procNeighSys = oldStat, oldSys }()
	procNeighStat, procNeighSys = dir+"/stat", dir+"/sys"
	os.MkdirAll(dir+"/stat", 0o755)
	for _, f := range []string{"ipv4", "ipv6"} {
		os.MkdirAll(dir+"/sys/"+f+"/neigh/default", 0o755)
		os.WriteFile(dir+"/sys/"+f+"/neigh/default/gc_thresh3", []byte("1024\n"), 0o644)
	}
	write := func(arp, ndisc string) {
		os.WriteFile(dir+"/stat/arp_cache", []byte(arp), 0o644)
		os.WriteFile(dir+"/stat/ndisc_cache", []byte(ndisc), 0o644)
	}
	var r0 *runner
	run := func() Step {
		var s Step
		s.Status = Pass
		stepNeighbours(r0, context.Background(), &s)
		return s
	}
	write(neighStat(40, 3, 2), neighStat(20, 0, 0))
	r0 = &runner{}
	r0.neigh, _ = readNeighbourTables()
	if len(r0.neigh) != 2 || r0.neigh[0] != (NeighbourTable{"ARP", 40, 1024, 5}) {
		t.Fatalf("tables %+v", r0.neigh)
	}
	if s := run(); s.Status != Pass || s.Summary != "ARP 40 entries of 1024, NDP 20 entries of 1024" {
		t.Fatalf("overflowed before the run only: %+v", s)
	}
	write(neighStat(0x3f0, 3, 2), neighStat(20, 0, 0))
	if s := run(); s.Status != Warn || !strings.Contains(s.Error, "ARP table is nearly full") {
		t.Fatalf("nearly full: %+v", s)
	}
	write(neighStat(0x400, 3, 2), neighStat(0x400, 0, 7))
	s := run()
	if s.Status != Fail || !strings.Contains(s.Error, "NDP 7 times") || strings.Contains(s.Error, "ARP") || !strings.Contains(s.Hint, "net.ipv6.neigh.default.gc_thresh3=8192") {
		t.Fatalf("full during the run: %+v", s)
	}
	write("garbage", "entries table_fulls\n1 2 3\n")
	if _, err := readNeighbourTables(); err == nil {
		t.Fatal("a malformed table was read")
	}
}

// TestNeighbourTablesOfThisKernel: the real files parse.
func TestNeighbourTablesOfThisKernel(t *testing.T) {
	if _, err := os.Stat("/proc/net/stat/arp_cache"); err != nil {
		t.Skip("no /proc/net/stat/arp_cache here")
	}
	got, err := readNeighbourTables()
	if err != nil || len(got) == 0 || got[0].Family != "ARP" || got[0].Entries < 0 {
		t.Fatalf("%+v %v", got, err)
	}
}
