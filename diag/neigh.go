package diag

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/lanpairing/pairing/discovery"
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

// NeighbourFacts is the neighbour-table step's record: the kernel's
// tables when the run began and now (a table that was full during the
// run lost this run's packets), and the entries on our LAN links.
type NeighbourFacts struct {
	Start []NeighbourTable `json:"start,omitempty"`
	Now   []NeighbourTable `json:"now,omitempty"`
	Error string           `json:"error,omitempty"`
	// Entries are the neighbours on LAN links (other devices this host
	// has talked to), with their state.
	Entries []Neighbour `json:"entries,omitempty"`
}

// Neighbour is one entry of the kernel's neighbour table.
type Neighbour struct {
	Addr      netip.Addr `json:"addr"`
	Interface string     `json:"interface"`
	State     string     `json:"state"`
}

// maxNeighbours bounds the entries recorded.
const maxNeighbours = 64

func gatherNeighbours(ctx context.Context, e *env, in Facts) Facts {
	out := &NeighbourFacts{Start: e.neighStart}
	now, err := readNeighbourTables()
	if err != nil {
		out.Error = err.Error()
	}
	out.Now = now
	lans := map[int]string{}
	if in.Interfaces != nil {
		for _, i := range in.Interfaces.Interfaces {
			if i.Class == discovery.ClassLAN {
				lans[i.Index] = i.Name
			}
		}
	}
	ns, _ := netlink.NeighList(0, netlink.FAMILY_ALL)
	for _, n := range ns {
		name, ok := lans[n.LinkIndex]
		a, aok := netip.AddrFromSlice(n.IP)
		if !ok || !aok || a.IsMulticast() || len(out.Entries) >= maxNeighbours {
			continue
		}
		out.Entries = append(out.Entries, Neighbour{Addr: a.Unmap(), Interface: name, State: neighStateName(n.State)})
	}
	return Facts{Neighbours: out}
}
