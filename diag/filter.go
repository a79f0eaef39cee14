package diag

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"

	"github.com/lanpairing/pairing/discovery/beacon"
)

// FilterFacts is the packet-filter step's record: this host's nftables
// ruleset (read with 'nft -j list ruleset', as root), and what its input
// chains do to the packets pairing needs.
type FilterFacts struct {
	// Read: the ruleset was read; else Error says why.
	Read   bool          `json:"read"`
	Error  string        `json:"error,omitempty"`
	Chains []FilterChain `json:"chains,omitempty"`
	// Verdicts are what the input chains do to a new inbound packet of
	// each kind pairing needs.
	Verdicts []FilterVerdict `json:"verdicts,omitempty"`
}

// FilterChain is one base chain on an inbound hook.
type FilterChain struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Name   string `json:"name"`
	Hook   string `json:"hook"`
	Prio   int    `json:"prio"`
	Policy string `json:"policy"`
	Rules  int    `json:"rules"`
}

// FilterVerdict is what the ruleset does to one kind of packet.
type FilterVerdict struct {
	// Packet names it: "udp 27280 (beacon)".
	Packet string `json:"packet"`
	Proto  string `json:"proto"`
	Port   int    `json:"port"`
	// Interface is the input interface the packet comes in by.
	Interface string `json:"interface,omitempty"`
	// Verdict: accept, drop or reject; Certain when every match of the
	// deciding rule was understood (else the rule may not apply).
	Verdict string `json:"verdict"`
	Certain bool   `json:"certain"`
	// Where: the table, chain and rule (by handle) that decided, "policy"
	// when the chain's policy did.
	Table  string `json:"table,omitempty"`
	Chain  string `json:"chain,omitempty"`
	Handle int    `json:"handle,omitempty"`
	Rule   string `json:"rule,omitempty"`
}

// Drops reports whether the verdict keeps the packet out.
func (v FilterVerdict) Drops() bool {
	return v.Verdict == "drop" || strings.HasPrefix(v.Verdict, "reject")
}

// Where names the table and chain ("inet fw input").
func (v FilterVerdict) Where() string {
	return strings.TrimSpace(v.Table + " " + v.Chain)
}

// readRuleset is 'nft -j list ruleset'; a variable for tests.
var readRuleset = func(ctx context.Context) ([]byte, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root: the packet filter cannot be read (run diag with sudo to include it)")
	}
	path, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("nft is not installed: %w", err)
	}
	return exec.CommandContext(ctx, path, "-j", "list", "ruleset").Output()
}

// Packets the filter step asks about: pairing's UDP ports, and its TCP
// port when the daemon runs.
type packetKind struct {
	name  string
	proto string
	port  int
	iif   string // the input interface, "" for any
}

// label names the packet: "udp 27280 (beacon) on eth0".
func (k packetKind) label() string {
	s := fmt.Sprintf("%s %d (%s)", k.proto, k.port, k.name)
	if k.iif != "" {
		s += " on " + k.iif
	}
	return s
}

func gatherFilter(ctx context.Context, e *env, in Facts) Facts {
	out := &FilterFacts{}
	b, err := readRuleset(ctx)
	if err != nil {
		out.Error = err.Error()
		return Facts{Filter: out}
	}
	rs, err := parseRuleset(b)
	if err != nil {
		out.Error = err.Error()
		return Facts{Filter: out}
	}
	out.Read = true
	base := []packetKind{{"beacon", "udp", beacon.DefaultPort, ""}, {"mDNS", "udp", 5353, ""}}
	if in.Daemon != nil && in.Daemon.Status != nil && in.Daemon.Status.Port > 0 {
		base = append(base, packetKind{"pairing port", "tcp", in.Daemon.Status.Port, ""})
	}
	// Each packet as it comes in by each LAN interface (a rule may
	// match the input interface).
	var ifnames []string
	for _, p := range lanPrefixes(in.Interfaces) {
		if !slices.Contains(ifnames, p.Interface) {
			ifnames = append(ifnames, p.Interface)
		}
	}
	var kinds []packetKind
	for _, k := range base {
		if len(ifnames) == 0 {
			kinds = append(kinds, k)
		}
		for _, n := range ifnames {
			k.iif = n
			kinds = append(kinds, k)
		}
	}
	out.Chains, out.Verdicts = rs.evaluate(kinds)
	return Facts{Filter: out}
}

// ruleset is the parsed 'nft -j' output.
type ruleset struct {
	chains map[string]*nftChain // by family/table/name
}

type nftChain struct {
	Family, Table, Name, Hook, Type, Policy string
	Prio                                    int
	rules                                   []nftRule
}

type nftRule struct {
	Handle int               `json:"handle"`
	Expr   []json.RawMessage `json:"expr"`
}

func chainKey(fam, table, name string) string { return fam + "/" + table + "/" + name }

// maxRuleset bounds the ruleset read (a firewall of thousands of rules
// is a few MiB of JSON).
const maxRuleset = 16 << 20

func parseRuleset(b []byte) (*ruleset, error) {
	if len(b) > maxRuleset {
		return nil, fmt.Errorf("nft ruleset of %d bytes: too large to read", len(b))
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("nft JSON: %w", err)
	}
	rs := &ruleset{chains: map[string]*nftChain{}}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var c struct {
				Family, Table, Name, Hook, Type, Policy string
				Prio                                    int
			}
			if json.Unmarshal(raw, &c) == nil {
				rs.chains[chainKey(c.Family, c.Table, c.Name)] = &nftChain{Family: c.Family, Table: c.Table, Name: c.Name, Hook: c.Hook, Type: c.Type, Policy: c.Policy, Prio: c.Prio}
			}
		}
	}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["rule"]; ok {
			var r struct {
				Family, Table, Chain string
				nftRule
			}
			if json.Unmarshal(raw, &r) != nil {
				continue
			}
			if c := rs.chains[chainKey(r.Family, r.Table, r.Chain)]; c != nil {
				c.rules = append(c.rules, r.nftRule)
			}
		}
	}
	return rs, nil
}

// evaluate runs a new inbound IPv4 packet of each kind through the base
// chains on the prerouting and input hooks (ip and inet tables), in
// priority order: the first chain that drops it decides.
func (rs *ruleset) evaluate(kinds []packetKind) ([]FilterChain, []FilterVerdict) {
	var base []*nftChain
	for _, c := range rs.chains {
		if (c.Hook == "input" || c.Hook == "prerouting") && (c.Family == "inet" || c.Family == "ip") && c.Type == "filter" {
			base = append(base, c)
		}
	}
	sort.Slice(base, func(i, j int) bool {
		if base[i].Hook != base[j].Hook {
			return base[i].Hook == "prerouting"
		}
		return base[i].Prio < base[j].Prio
	})
	var chains []FilterChain
	for _, c := range base {
		chains = append(chains, FilterChain{c.Family, c.Table, c.Name, c.Hook, c.Prio, c.Policy, len(c.rules)})
	}
	var out []FilterVerdict
	for _, k := range kinds {
		v := FilterVerdict{Packet: k.label(), Proto: k.proto, Port: k.port, Interface: k.iif, Verdict: "accept", Certain: true}
		for _, c := range base {
			cv := rs.run(c, k, 0)
			if cv.Drops() {
				v = cv
				v.Packet, v.Proto, v.Port, v.Interface = k.label(), k.proto, k.port, k.iif
				break
			}
			if !cv.Certain {
				v.Certain = false
			}
		}
		out = append(out, v)
	}
	return chains, out
}

// maxJumps bounds the depth of jumps followed.
const maxJumps = 8

// run evaluates the packet through chain c: the first rule whose matches
// all hold decides (a match it does not understand makes the verdict
// uncertain but is taken to hold for drops only when nothing else
// decides). The chain's policy decides when no rule does.
func (rs *ruleset) run(c *nftChain, k packetKind, depth int) FilterVerdict {
	certain := true
	for _, r := range c.rules {
		m := matchRule(r, k)
		if m.result == matchNo {
			continue
		}
		if m.result == matchMaybe {
			// An accept we are not sure of does not end the chain; a
			// drop we are not sure of is noted but not concluded.
			if m.verdict != "" && m.verdict != "accept" && m.verdict != "jump" && m.verdict != "goto" {
				certain = false
			}
			continue
		}
		switch m.verdict {
		case "accept":
			return FilterVerdict{Verdict: "accept", Certain: certain, Table: c.Family + " " + c.Table, Chain: c.Name, Handle: r.Handle, Rule: m.text}
		case "drop", "reject":
			v := m.verdict
			if m.reject != "" {
				v += " with " + m.reject
			}
			return FilterVerdict{Verdict: v, Certain: certain, Table: c.Family + " " + c.Table, Chain: c.Name, Handle: r.Handle, Rule: m.text}
		case "jump", "goto":
			sub := rs.chains[chainKey(c.Family, c.Table, m.target)]
			if sub == nil || depth >= maxJumps {
				certain = false
				continue
			}
			sv := rs.run(sub, k, depth+1)
			if sv.Verdict != "return" {
				sv.Certain = sv.Certain && certain
				return sv
			}
			certain = certain && sv.Certain
			if m.verdict == "goto" {
				return FilterVerdict{Verdict: "return", Certain: certain}
			}
		case "return":
			return FilterVerdict{Verdict: "return", Certain: certain}
		}
	}
	if c.Hook == "" {
		return FilterVerdict{Verdict: "return", Certain: certain}
	}
	pol := c.Policy
	if pol == "" {
		pol = "accept"
	}
	return FilterVerdict{Verdict: pol, Certain: certain, Table: c.Family + " " + c.Table, Chain: c.Name, Rule: "policy " + pol}
}

const (
	matchYes = iota
	matchNo
	matchMaybe
)

type ruleMatch struct {
	result  int
	verdict string // accept, drop, reject, jump, goto, return, "" (none)
	reject  string
	target  string
	text    string
}

// matchRule decides whether every match of r holds for a new inbound
// packet of kind k, and what r then does.
func matchRule(r nftRule, k packetKind) ruleMatch {
	m := ruleMatch{result: matchYes}
	var words []string
	for _, raw := range r.Expr {
		var e map[string]json.RawMessage
		if json.Unmarshal(raw, &e) != nil {
			m.result = matchMaybe
			continue
		}
		for key, val := range e {
			switch key {
			case "match":
				res, text := matchExpr(val, k)
				words = append(words, text)
				if res == matchNo {
					m.result = matchNo
				} else if res == matchMaybe && m.result == matchYes {
					m.result = matchMaybe
				}
			case "accept", "drop", "return":
				m.verdict = key
				words = append(words, key)
			case "reject":
				m.verdict = "reject"
				var rj struct{ Type, Expr string }
				json.Unmarshal(val, &rj)
				m.reject = strings.TrimSpace(rj.Type + " " + rj.Expr)
				words = append(words, strings.TrimSpace("reject "+m.reject))
			case "jump", "goto":
				var t struct{ Target string }
				json.Unmarshal(val, &t)
				m.verdict, m.target = key, t.Target
				words = append(words, key+" "+t.Target)
			case "counter", "log", "limit":
				// no effect on the verdict (a limit makes a rule apply
				// sometimes: uncertain)
				if key == "limit" && m.result == matchYes {
					m.result = matchMaybe
				}
			case "vmap", "xt":
				m.result = matchMaybe
				words = append(words, key)
			}
		}
	}
	m.text = strings.Join(words, " ")
	return m
}

// matchExpr decides one match expression: protocol, ports, TCP flags,
// conntrack state and the interface are understood; the rest (addresses,
// marks) may or may not hold.
func matchExpr(raw json.RawMessage, k packetKind) (int, string) {
	var x struct {
		Op    string          `json:"op"`
		Left  json.RawMessage `json:"left"`
		Right json.RawMessage `json:"right"`
	}
	if json.Unmarshal(raw, &x) != nil {
		return matchMaybe, "?"
	}
	var left struct {
		Payload *struct{ Protocol, Field string } `json:"payload"`
		Meta    *struct{ Key string }             `json:"meta"`
		Ct      *struct{ Key string }             `json:"ct"`
		And     []json.RawMessage                 `json:"&"`
	}
	json.Unmarshal(x.Left, &left)
	neg := x.Op == "!="
	res := func(ok bool) int {
		if ok != neg {
			return matchYes
		}
		return matchNo
	}
	rightText := strings.Trim(string(x.Right), `"`)
	switch {
	case left.Payload != nil && (left.Payload.Protocol == "udp" || left.Payload.Protocol == "tcp" || left.Payload.Protocol == "th"):
		p := left.Payload
		text := fmt.Sprintf("%s %s %s", p.Protocol, p.Field, rightText)
		if p.Protocol != "th" && p.Protocol != k.proto {
			return matchNo, text // the match implies the protocol
		}
		if p.Field == "dport" {
			return res(portIn(x.Right, k.port)), text
		}
		return matchMaybe, text
	case len(left.And) > 0:
		// tcp flags & (syn|ack) == syn: a new TCP connection.
		var p struct {
			Payload *struct{ Protocol, Field string } `json:"payload"`
		}
		json.Unmarshal(left.And[0], &p)
		if p.Payload != nil && p.Payload.Protocol == "tcp" && p.Payload.Field == "flags" {
			if k.proto != "tcp" {
				return matchNo, "tcp flags"
			}
			return res(strings.Contains(rightText, "syn")), "tcp flags syn"
		}
		return matchMaybe, "?"
	case left.Meta != nil && left.Meta.Key == "l4proto":
		return res(rightText == k.proto || strings.Contains(string(x.Right), `"`+k.proto+`"`)), "meta l4proto " + rightText
	case left.Meta != nil && (left.Meta.Key == "iifname" || left.Meta.Key == "iif") && k.iif != "":
		return res(rightText == k.iif || strings.Contains(string(x.Right), `"`+k.iif+`"`)), "iifname " + rightText
	case left.Meta != nil && left.Meta.Key == "nfproto":
		return res(rightText == "ipv4" || strings.Contains(rightText, "ipv4")), "meta nfproto " + rightText
	case left.Ct != nil && left.Ct.Key == "state":
		// A new inbound packet: conntrack state "new".
		return res(strings.Contains(rightText, "new")), "ct state " + rightText
	case left.Payload != nil:
		return matchMaybe, fmt.Sprintf("%s %s %s", left.Payload.Protocol, left.Payload.Field, rightText)
	case left.Meta != nil:
		return matchMaybe, fmt.Sprintf("meta %s %s", left.Meta.Key, rightText)
	}
	return matchMaybe, "?"
}

// portIn reports whether port is the right side: a number, a set of
// numbers and ranges, or a range.
func portIn(raw json.RawMessage, port int) bool {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n == port
	}
	var r struct {
		Range []int           `json:"range"`
		Set   json.RawMessage `json:"set"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return false
	}
	if len(r.Range) == 2 {
		return port >= r.Range[0] && port <= r.Range[1]
	}
	var items []json.RawMessage
	if json.Unmarshal(r.Set, &items) == nil {
		for _, it := range items {
			if portIn(it, port) {
				return true
			}
		}
	}
	return false
}
