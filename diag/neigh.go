package diag

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The kernel's neighbour tables (ARP for IPv4, NDP for IPv6) are shared
// by every network namespace on the machine: on a host with many
// containers, or many namespaces, they fill (1,024 entries by default),
// and then the kernel cannot send to a device it has no entry for yet:
// IPv4 drops the packet silently (UDP counts it in SndbufErrors), IPv6
// fails the send with EINVAL, and dmesg says "neighbor table overflow".
// Beacons, replies and connections to new devices are lost: pairing sees
// some devices and not others, for seconds at a time. The tables' figures
// come from rtnetlink (RTM_GETNEIGHTBL, what `ip -s ntable` shows), which
// every namespace may read; /proc/net/stat has them only in the first.

// NeighbourTable is one table as the kernel counts it.
type NeighbourTable struct {
	Family  string `json:"family"` // "ARP" or "NDP"
	Entries int64  `json:"entries"`
	Limit   int64  `json:"limit"` // gc_thresh3, the hard limit
	// Full counts the times since boot that an entry could not be made.
	Full int64 `json:"table_full"`
}

// readNeighbourTables is a variable for the tests.
var readNeighbourTables = neighbourTablesOfKernel

// Attributes of a neighbour table message (linux/neighbour.h).
const (
	ndtaName   = 1
	ndtaThresh = 4 // NDTA_THRESH3
	ndtaConfig = 5
	ndtaStats  = 7
)

// ndtmsg is the request's header: the family (AF_UNSPEC: all tables).
type ndtmsg struct{}

func (ndtmsg) Len() int          { return 4 }
func (ndtmsg) Serialize() []byte { return make([]byte, 4) }

func neighbourTablesOfKernel() ([]NeighbourTable, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGHTBL, unix.NLM_F_DUMP)
	req.AddData(ndtmsg{})
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGHTBL)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink neighbour tables: %w", err)
	}
	var out []NeighbourTable
	for _, m := range msgs {
		if t, ok := parseNeighbourTable(m); ok {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the kernel reported no neighbour table")
	}
	return out, nil
}

// parseNeighbourTable reads one RTM_NEWNEIGHTBL message (after its
// netlink header). Only the table-wide message of arp_cache or
// ndisc_cache counts; the per-interface ones carry no statistics.
func parseNeighbourTable(m []byte) (NeighbourTable, bool) {
	if len(m) < 4 {
		return NeighbourTable{}, false
	}
	attrs, err := nl.ParseRouteAttr(m[4:])
	if err != nil {
		return NeighbourTable{}, false
	}
	var t NeighbourTable
	var stats, config bool
	for _, a := range attrs {
		v := a.Value
		switch a.Attr.Type {
		case ndtaName:
			switch strings.TrimRight(string(v), "\x00") {
			case "arp_cache":
				t.Family = "ARP"
			case "ndisc_cache":
				t.Family = "NDP"
			}
		case ndtaThresh:
			if len(v) >= 4 {
				t.Limit = int64(binary.NativeEndian.Uint32(v))
			}
		case ndtaConfig: // struct ndt_config: entries after two u16
			if len(v) >= 8 {
				t.Entries, config = int64(binary.NativeEndian.Uint32(v[4:])), true
			}
		case ndtaStats: // struct ndt_stats: table_fulls is the 11th u64
			if len(v) >= 88 {
				t.Full, stats = int64(binary.NativeEndian.Uint64(v[80:])), true
			}
		}
	}
	return t, t.Family != "" && stats && config
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
		parts = append(parts, fmt.Sprintf("%s %d of %d", t.Family, t.Entries, t.Limit))
		for _, b := range r.neigh {
			if b.Family == t.Family && t.Full > b.Full {
				full = append(full, fmt.Sprintf("%s %d times", t.Family, t.Full-b.Full))
			}
		}
		if t.Limit > 0 && t.Entries*10 >= t.Limit*9 {
			near = append(near, t.Family)
		}
	}
	s.Summary = strings.Join(parts, ", ") + " entries (the whole machine's)"
	switch {
	case len(full) > 0:
		s.Status = Fail
		s.Error = "the kernel's neighbour table was full during this run (" + strings.Join(full, ", ") + "): packets to devices it had no entry for were dropped"
		s.Hint = neighbourHint
	case len(near) > 0:
		s.Status = Warn
		s.Error = "the kernel's " + strings.Join(near, " and ") + " table is nearly full: new devices will soon be unreachable"
		s.Hint = neighbourHint
	}
}
