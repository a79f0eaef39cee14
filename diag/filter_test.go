package diag

import (
	"testing"
)

// A ruleset as 'nft -j list ruleset' prints it (nft 1.0.6).
const sampleRuleset = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "fw", "handle": 1}},
{"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
{"chain": {"family": "inet", "table": "fw", "name": "sub", "handle": 2}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 3, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"set": [5353, {"range": [27000, 27300]}]}}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 7, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 4000}}, {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.1.0.1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 5000}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 11, "expr": [{"jump": {"target": "sub"}}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "sub", "handle": 12, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 6000}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"chain": {"family": "ip", "table": "pol", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 10, "policy": "drop"}},
{"rule": {"family": "ip", "table": "pol", "chain": "in", "handle": 2, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"accept": null}]}},
{"chain": {"family": "bridge", "table": "br", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}
]}`

// TestRulesetVerdicts: what the input chains do to the packets pairing
// needs: sets, ranges, rejects, jumps, policies, and matches diag cannot
// evaluate (an address) that make a drop uncertain.
func TestRulesetVerdicts(t *testing.T) {
	rs, err := parseRuleset([]byte(sampleRuleset))
	if err != nil {
		t.Fatal(err)
	}
	chains, vs := rs.evaluate([]packetKind{{"beacon", "udp", 27280, ""}, {"mDNS", "udp", 5353, ""}, {"other", "udp", 9, ""}, {"pairing", "tcp", 4000, ""}, {"addr", "tcp", 5000, ""}, {"sub", "tcp", 6000, ""}, {"open", "tcp", 7000, ""}})
	if len(chains) != 2 {
		t.Fatalf("chains %+v", chains)
	}
	want := []struct {
		verdict string
		certain bool
		handle  int
	}{
		{"drop", true, 5},
		{"drop", true, 5},
		{"drop", true, 0}, // the ip pol chain's policy: only TCP is accepted
		{"reject with icmpx admin-prohibited", true, 7},
		{"accept", false, 0}, // the address rule may or may not apply
		{"drop", true, 12},
		{"accept", true, 0},
	}
	for i, w := range want {
		v := vs[i]
		if v.Verdict != w.verdict || v.Certain != w.certain || v.Handle != w.handle {
			t.Errorf("%s: %+v, want %+v", v.Packet, v, w)
		}
	}
	if vs[5].Chain != "sub" || vs[2].Rule != "policy drop" || vs[2].Where() != "ip pol in" {
		t.Errorf("where: %+v %+v", vs[5], vs[2])
	}
}

// TestRulesetInterface: a rule on the input interface decides for
// packets coming in by it, and for no other.
func TestRulesetInterface(t *testing.T) {
	rs, err := parseRuleset([]byte(`{"nftables": [
{"chain": {"family": "inet", "table": "f", "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
{"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}, {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "ack"]]}, "right": "syn"}}, {"drop": null}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, vs := rs.evaluate([]packetKind{{"p", "tcp", 4000, "eth0"}, {"p", "tcp", 4000, "eth1"}, {"p", "tcp", 4000, ""}, {"b", "udp", 27280, "eth0"}})
	if !vs[0].Drops() || !vs[0].Certain || vs[0].Interface != "eth0" || vs[1].Drops() || !vs[1].Certain || vs[2].Certain || vs[3].Drops() {
		t.Fatalf("%+v", vs)
	}
}

// TestRulesetGarbage: what nft prints is read with a bound and never
// panics on surprises.
func TestRulesetGarbage(t *testing.T) {
	for _, in := range []string{"", "{", `{"nftables": 5}`, `{"nftables": [{"rule": {"family": "inet", "table": "x", "chain": "y", "expr": [{"match": 5}, 7, {"jump": {}}]}}]}`,
		`{"nftables": [{"chain": {"family": "inet", "table": "t", "name": "c", "type": "filter", "hook": "input", "policy": "accept"}}, {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"goto": {"target": "c"}}]}}]}`} {
		rs, err := parseRuleset([]byte(in))
		if err != nil {
			continue
		}
		rs.evaluate([]packetKind{{"beacon", "udp", 27280, ""}})
	}
	if _, err := parseRuleset(make([]byte, maxRuleset+1)); err == nil {
		t.Fatal("an oversized ruleset was read")
	}
}
