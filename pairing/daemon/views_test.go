package daemon

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/lanpairing/pairing/pairing"
)

// TestPeerInfoWire: pairing's own PeerInfo keeps the JSON the
// peer-to-peer protocol always had, and the control API's mirror (what
// `pairing join --json` prints) says the same.
func TestPeerInfoWire(t *testing.T) {
	p := pairing.PeerInfo{ID: "ABCD-EFGH", Name: "desk", Fingerprint: "sha256:ab",
		Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fe80::1%eth0")}, Port: 4242}
	const want = `{"id":"ABCD-EFGH","name":"desk","fingerprint":"sha256:ab","addresses":["10.0.0.1","fe80::1%eth0"],"port":4242}`
	wire, _ := json.Marshal(p)
	if string(wire) != want {
		t.Fatalf("wire PeerInfo %s, want %s", wire, want)
	}
	var back pairing.PeerInfo
	if err := json.Unmarshal([]byte(want), &back); err != nil || back.Port != 4242 || len(back.Addresses) != 2 {
		t.Fatalf("decode %+v, %v", back, err)
	}
	view, _ := json.Marshal(JoinView(&pairing.JoinResult{Peer: p, DurationMS: 1.5, Via: "beacon"}))
	if want := `{"peer":` + want + `,"duration_ms":1.5,"via":"beacon"}`; string(view) != want {
		t.Fatalf("join view %s, want %s", view, want)
	}
	if JoinView(nil) != nil {
		t.Fatal("view of no result is not nil")
	}
}
