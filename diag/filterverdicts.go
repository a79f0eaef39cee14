package diag

import (
	"fmt"
	"strings"
)

// The analysis of this host's packet filter: what its rules do to the
// packets pairing needs.

func concludeFilter(a *analysis) {
	f := a.f.Filter
	if f == nil {
		return
	}
	if !f.Read {
		a.skip[StepFilter] = "not read: " + f.Error
		return
	}
	var parts []string
	for _, v := range f.Verdicts {
		w := v.Verdict
		if v.Drops() {
			w += " (" + v.Where() + ")"
		}
		parts = append(parts, v.Packet+" "+w)
	}
	a.summary[StepFilter] = fmt.Sprintf("nftables: %s on inbound hooks; %s", plural(len(f.Chains), "chain", "chains"), strings.Join(parts, ", "))
	// One finding per rule: the packets it drops together.
	type group struct {
		v     FilterVerdict
		pkts  []string
		ports []string
		facts []string
	}
	var groups []*group
	for _, v := range f.Verdicts {
		if !v.Drops() {
			continue
		}
		var g *group
		for _, x := range groups {
			if x.v.Table == v.Table && x.v.Chain == v.Chain && x.v.Handle == v.Handle && x.v.Proto == v.Proto && x.v.Certain == v.Certain {
				g = x
			}
		}
		if g == nil {
			g = &group{v: v}
			groups = append(groups, g)
		}
		g.pkts = append(g.pkts, v.Packet)
		g.ports = append(g.ports, fmt.Sprint(v.Port))
		g.facts = append(g.facts, fact(StepFilter, "verdicts", v.Packet))
	}
	for _, g := range groups {
		v := g.v
		rule := fmt.Sprintf("%s chain %s (%s", v.Table, v.Chain, v.Rule)
		if v.Handle > 0 {
			rule += fmt.Sprintf(", handle %d", v.Handle)
		}
		rule += ")"
		ports := strings.Join(g.ports, ", ")
		if len(g.ports) > 1 {
			ports = "{ " + ports + " }"
		}
		switch {
		case !v.Certain:
			a.add(Finding{ID: "filter-may-drop", Severity: SevInfo, Step: StepFilter,
				Text:  fmt.Sprintf("this host's packet filter may drop inbound %s: %s, depending on matches diag cannot evaluate", list(g.pkts), rule),
				Facts: g.facts})
		case v.Proto == "tcp":
			sev, open := SevFail, []string{}
			for _, x := range f.Verdicts {
				if x.Proto == "tcp" && !(x.Drops() && x.Certain) {
					open = append(open, x.Interface)
				}
			}
			if len(open) > 0 {
				sev = SevWarn
			}
			a.add(Finding{ID: "host-filter-drops-tcp", Severity: sev, Step: StepFilter, Cause: CauseHostFilter,
				Text: fmt.Sprintf("this host's packet filter drops inbound TCP to the pairing port %d (%s): %s", v.Port, list(g.pkts), rule),
				Hint: fmt.Sprintf("phones and computers cannot connect, so pairing cannot work: allow it, e.g. nft insert rule %s %s tcp dport %d accept", v.Table, v.Chain, v.Port), Facts: g.facts})
		default:
			a.add(Finding{ID: "host-filter-drops-discovery", Severity: SevWarn, Step: StepFilter, Cause: CauseHostFilter,
				Text:  fmt.Sprintf("this host's own packet filter drops discovery: inbound %s dropped by %s", list(g.pkts), rule),
				Hint:  fmt.Sprintf("allow it, e.g. nft insert rule %s %s udp dport %s accept (firewalld: firewall-cmd --add-port=PORT/udp); pairing by QR code still works", v.Table, v.Chain, ports),
				Facts: g.facts})
		}
	}
}

// hostDrops is a certain drop verdict of this host's filter for the
// port, on any interface, if any.
func (a *analysis) hostDrops(proto string, port int) (FilterVerdict, bool) {
	return a.hostDropsOn(proto, port, "")
}

// hostDropsOn is the certain drop verdict for the port coming in by
// ifname ("" for any interface).
func (a *analysis) hostDropsOn(proto string, port int, ifname string) (FilterVerdict, bool) {
	if a.f.Filter == nil {
		return FilterVerdict{}, false
	}
	for _, v := range a.f.Filter.Verdicts {
		if v.Proto == proto && v.Port == port && v.Drops() && v.Certain && (ifname == "" || v.Interface == "" || v.Interface == ifname) {
			return v, true
		}
	}
	return FilterVerdict{}, false
}
