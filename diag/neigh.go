package diag

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel's neighbour tables (ARP for IPv4, NDP for IPv6) are shared
// by every network namespace on the machine: on a host with many
// containers, or many namespaces, they fill (1,024 entries by default),
// and then the kernel cannot send to a device it has no entry for yet
// (the send fails with EINVAL, and dmesg says "neighbor table overflow").
// Beacons, replies and connections to new devices are lost: pairing sees
// some devices and not others, for seconds at a time.
var (
	procNeighStat = "/proc/net/stat"
	procNeighSys  = "/proc/sys/net"
)

// NeighbourTable is one table as the kernel counts it.
type NeighbourTable struct {
	Family  string `json:"family"` // "ARP" or "NDP"
	Entries int64  `json:"entries"`
	// Limit is gc_thresh3, the hard limit; 0 when this namespace cannot
	// read it (only the first namespace has the file).
	Limit int64 `json:"limit,omitempty"`
	// Full counts the times since boot that an entry could not be made.
	Full int64 `json:"table_full"`
}

var neighbourTables = []struct{ family, stat, sys string }{
	{"ARP", "arp_cache", "ipv4"},
	{"NDP", "ndisc_cache", "ipv6"},
}

// readNeighbourTables reads both tables; a table the kernel does not show
// (no IPv6) is left out.
func readNeighbourTables() ([]NeighbourTable, error) {
	var out []NeighbourTable
	var firstErr error
	for _, nt := range neighbourTables {
		b, err := os.ReadFile(filepath.Join(procNeighStat, nt.stat))
		if err != nil {
			firstErr = err
			continue
		}
		t, err := parseNeighStat(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", nt.stat, err)
		}
		t.Family = nt.family
		if b, err := os.ReadFile(filepath.Join(procNeighSys, nt.sys, "neigh/default/gc_thresh3")); err == nil {
			t.Limit, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, firstErr
	}
	return out, nil
}

// parseNeighStat reads /proc/net/stat/arp_cache (or ndisc_cache): a
// header, then one line of hexadecimal counters per CPU. entries is the
// table's (the same on every line); table_fulls is per CPU, summed.
func parseNeighStat(b []byte) (NeighbourTable, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return NeighbourTable{}, fmt.Errorf("no counters")
	}
	head := strings.Fields(lines[0])
	col := func(name string) int {
		for i, h := range head {
			if h == name {
				return i
			}
		}
		return -1
	}
	ce, cf := col("entries"), col("table_fulls")
	if ce < 0 || cf < 0 {
		return NeighbourTable{}, fmt.Errorf("no entries or table_fulls column in %q", lines[0])
	}
	var t NeighbourTable
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != len(head) {
			return NeighbourTable{}, fmt.Errorf("line %d has %d fields, the header %d", i+2, len(f), len(head))
		}
		full, err := strconv.ParseInt(f[cf], 16, 64)
		if err != nil {
			return NeighbourTable{}, fmt.Errorf("line %d: %w", i+2, err)
		}
		t.Full += full
		if i == 0 {
			if t.Entries, err = strconv.ParseInt(f[ce], 16, 64); err != nil {
				return NeighbourTable{}, fmt.Errorf("line 2: %w", err)
			}
		}
	}
	return t, nil
}

// neighbourHint is the fix, for both families.
const neighbourHint = "the ARP and NDP tables are shared by every network namespace on this machine (containers, VMs, test namespaces); raise their limits: " +
	"sysctl -w net.ipv4.neigh.default.gc_thresh2=4096 net.ipv4.neigh.default.gc_thresh3=8192 net.ipv6.neigh.default.gc_thresh2=4096 net.ipv6.neigh.default.gc_thresh3=8192"

// stepNeighbours compares the tables with what they were when the run
// began: a table that was full during the run lost this run's packets.
func stepNeighbours(r *runner, ctx context.Context, s *Step) {
	now, err := readNeighbourTables()
	if err != nil {
		s.Status, s.Error = Skip, "cannot read the kernel's neighbour tables: "+err.Error()
		return
	}
	s.Details = now
	var parts, full, near []string
	for _, t := range now {
		p := fmt.Sprintf("%s %d entries", t.Family, t.Entries)
		if t.Limit > 0 {
			p += fmt.Sprintf(" of %d", t.Limit)
		}
		parts = append(parts, p)
		for _, b := range r.neigh {
			if b.Family == t.Family && t.Full > b.Full {
				full = append(full, fmt.Sprintf("%s %d times", t.Family, t.Full-b.Full))
			}
		}
		if t.Limit > 0 && t.Entries*10 >= t.Limit*9 {
			near = append(near, t.Family)
		}
	}
	s.Summary = strings.Join(parts, ", ")
	switch {
	case len(full) > 0:
		s.Status = Fail
		s.Error = "the kernel's neighbour table was full during this run (" + strings.Join(full, ", ") + "): packets to devices it had no entry for were dropped (sends fail with EINVAL)"
		s.Hint = neighbourHint
	case len(near) > 0:
		s.Status = Warn
		s.Error = "the kernel's " + strings.Join(near, " and ") + " table is nearly full: new devices will soon be unreachable"
		s.Hint = neighbourHint
	}
}
