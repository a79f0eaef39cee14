package diag

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/control"
)

// Hand-made facts for the analysis: a host with eth0 on 192.168.1.0/24,
// and what each case adds.

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func baseFacts() Facts {
	return Facts{
		Interfaces: &InterfaceFacts{Interfaces: []Interface{
			{Name: "lo", Class: discovery.ClassLoopback, Kind: "loopback", Up: true, Carrier: true, Addrs: []netip.Prefix{pfx("127.0.0.1/8")}},
			{Name: "eth0", Class: discovery.ClassLAN, Kind: "ethernet", Up: true, Carrier: true, Addrs: []netip.Prefix{pfx("192.168.1.10/24")}},
		}},
		Daemon:    &DaemonFacts{Socket: "/run/pairing/pairing.sock", FoundAt: "/run/pairing/pairing.sock", Status: &control.Status{Device: control.Device{Name: "me", Port: 4000}, Addresses: []control.Address{{IP: ip("192.168.1.10"), Interface: "eth0"}}}},
		Routes:    &RouteFacts{Defaults: []RouteEntry{{Prefix: pfx("0.0.0.0/0"), Gateway: ip("192.168.1.1"), Interface: "eth0", Table: "main"}}, Lookups: []RouteLookup{{Purpose: LookupOutside, Resolved: discovery.Resolved{Dst: "192.0.2.1", Interface: "eth0", Table: "main"}, Class: discovery.ClassLAN}, {Purpose: LookupLAN, Of: "192.168.1.0/24 on eth0", Expect: "eth0", Resolved: discovery.Resolved{Dst: "192.168.1.1", Interface: "eth0", Table: "main"}, Class: discovery.ClassLAN}}},
		Filter:    &FilterFacts{Read: true, Verdicts: []FilterVerdict{{Packet: "udp 27280 (beacon)", Proto: "udp", Port: 27280, Verdict: "accept", Certain: true}, {Packet: "udp 5353 (mDNS)", Proto: "udp", Port: 5353, Verdict: "accept", Certain: true}}},
		Preferred: &PreferredFacts{Found: []discovery.Address{{IP: ip("192.168.1.10"), Interface: "eth0"}}},
		Listener:  &ListenerFacts{DiagPort: 5000, DaemonPort: 4000},
		SelfReach: &SelfReachFacts{Port: 5000, Found: []discovery.Address{{IP: ip("192.168.1.10"), Interface: "eth0"}}, Candidates: []discovery.Candidate{{IP: "192.168.1.10", Interface: "eth0", Result: "confirmed"}}},
		Multicast: &MulticastFacts{Port: 27280, Results: []beacon.LoopResult{{Interface: "eth0", Family: "v4", Joined: true, Sent: true, Received: true}}},
		Paired:    &PairedFacts{From: "daemon"},
		Peers:     &PeerFacts{Peers: []FoundPeer{{ID: "PEER", Name: "b", Port: 4001, Heard: "query", Sources: []string{discovery.SourceBeacon, discovery.SourceMDNS}, Addresses: []PeerAddr{{Addr: ip("192.168.1.20"), Link: "eth0", Route: "eth0", RouteClass: discovery.ClassLAN}}}}},
		PeerReach: &PeerReachFacts{Peers: []PeerReach{{Name: "b", ID: "PEER", Dials: []DialResult{{Target: "192.168.1.20:4001", Outcome: DialOK}}, Small: "ok", Large: "ok"}}},
		MDNS:      &MDNSFacts{},
		Reached:   &ReachedFacts{Port: 4000, Addresses: []control.Address{{IP: ip("192.168.1.10"), Interface: "eth0"}}},
		WebRTC:    &WebRTCFacts{Candidates: []Candidate{{Type: "host"}}, UDPBufferLimit: 8 << 20},
		Clock:     &ClockFacts{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
}

// analyze runs the analysis and checks that every cause blamed is one of
// allowed: no cause without the facts that prove it.
func analyze(t *testing.T, f Facts, allowed ...string) ([]Step, []Finding) {
	t.Helper()
	steps, findings := Analyze(f)
	for _, x := range findings {
		if x.Cause != "" && !slices.Contains(allowed, x.Cause) {
			t.Errorf("finding %s blames %s without cause: %s", x.ID, x.Cause, x.Text)
		}
		if len(x.Facts) == 0 {
			t.Errorf("finding %s names no facts", x.ID)
		}
	}
	return steps, findings
}

func stepOf(t *testing.T, steps []Step, name string) Step {
	t.Helper()
	for _, s := range steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s", name)
	return Step{}
}

func findingOf(fs []Finding, id string) *Finding {
	for i := range fs {
		if fs[i].ID == id {
			return &fs[i]
		}
	}
	return nil
}

func TestAnalysisHealthy(t *testing.T) {
	steps, findings := analyze(t, baseFacts())
	for _, s := range steps {
		if s.Status != Pass && s.Status != Skip {
			t.Errorf("%s: %s %s", s.Name, s.Status, s.Error)
		}
	}
	if len(findings) != 0 {
		t.Errorf("findings on a healthy LAN: %+v", findings)
	}
}

func tunDefault(f *Facts) {
	f.Interfaces.Interfaces = append(f.Interfaces.Interfaces, Interface{Name: "tun0", Class: discovery.ClassTunnel, Kind: "vpn", Up: true, Carrier: true, Addrs: []netip.Prefix{pfx("10.8.0.2/24")}})
	f.Routes.Lookups[0] = RouteLookup{Purpose: LookupOutside, Resolved: discovery.Resolved{Dst: "192.0.2.1", Interface: "tun0", Table: "51820"}, Class: discovery.ClassTunnel}
}

// TestAnalysisVPNDefault: a tunnel holding the default route behind
// policy routing; the QR code is affected only when it leads with the
// tunnel's address.
func TestAnalysisVPNDefault(t *testing.T) {
	f := baseFacts()
	tunDefault(&f)
	steps, fs := analyze(t, f, CauseVPN)
	v := findingOf(fs, "vpn-default-route")
	if v == nil || v.Severity != SevWarn || !strings.Contains(v.Hint, "the QR code is not affected: it leads with 192.168.1.10 on eth0") || !strings.Contains(v.Text, "table 51820") || !strings.Contains(v.Hint, "LAN traffic stays on the LAN") {
		t.Fatalf("%+v", v)
	}
	if s := stepOf(t, steps, StepRoutes); s.Status != Warn || !strings.Contains(s.Error, "tun0") {
		t.Fatalf("routes %+v", s)
	}
	f.Daemon.Status.Addresses = []control.Address{{IP: ip("10.8.0.2"), Interface: "tun0"}}
	steps, fs = analyze(t, f, CauseVPN)
	if v := findingOf(fs, "vpn-default-route"); v == nil || v.Severity != SevWarn || !strings.Contains(v.Hint, "the QR code's first address 10.8.0.2 is the VPN's") {
		t.Fatalf("%+v", v)
	}
	if s := stepOf(t, steps, StepRoutes); s.Status != Warn {
		t.Fatalf("routes %+v", s)
	}
}

// TestAnalysisSplitTunnel: a VPN route broader than the LAN's is no
// problem; one more specific that the kernel uses takes part of the LAN.
func TestAnalysisSplitTunnel(t *testing.T) {
	f := baseFacts()
	f.Interfaces.Interfaces = append(f.Interfaces.Interfaces, Interface{Name: "tun0", Class: discovery.ClassTunnel, Kind: "vpn", Up: true, Carrier: true, Addrs: []netip.Prefix{pfx("10.8.0.2/24")}})
	f.Routes.Tunnels = []RouteEntry{{Prefix: pfx("192.168.0.0/16"), Interface: "tun0", Table: "main"}}
	steps, fs := analyze(t, f, CauseVPN)
	if v := findingOf(fs, "vpn-route-covers-lan"); v == nil || v.Severity != SevInfo {
		t.Fatalf("broader: %+v", fs)
	}
	if s := stepOf(t, steps, StepRoutes); s.Status != Pass || strings.Contains(s.Hint, "unreachable") {
		t.Fatalf("broader: %+v", s)
	}
	f.Routes.Tunnels = append(f.Routes.Tunnels, RouteEntry{Prefix: pfx("192.168.1.128/25"), Interface: "tun0", Table: "main"})
	f.Routes.Lookups = append(f.Routes.Lookups, RouteLookup{Purpose: LookupTunnel, Of: "192.168.1.128/25 via tun0 (table main)", Expect: "eth0", Resolved: discovery.Resolved{Dst: "192.168.1.129", Interface: "tun0", Table: "main"}, Class: discovery.ClassTunnel})
	steps, fs = analyze(t, f, CauseVPN)
	v := findingOf(fs, "vpn-steals-lan")
	if v == nil || v.Cause != CauseVPN || !strings.Contains(v.Text, "192.168.1.128/25") || !strings.Contains(v.Text, "through tun0") {
		t.Fatalf("more specific: %+v", fs)
	}
	if s := stepOf(t, steps, StepRoutes); s.Status != Warn {
		t.Fatalf("more specific: %+v", s)
	}
}

// TestAnalysisNotReached: a reverse probe's not-reached blames this
// host's filter only with positive evidence.
func TestAnalysisNotReached(t *testing.T) {
	base := func(ifname string, own string, trust, outcome string) Facts {
		f := baseFacts()
		f.Interfaces.Interfaces = append(f.Interfaces.Interfaces, Interface{Name: "docker0", Class: discovery.ClassVirtual, Kind: "bridge", Up: true, Carrier: true, Addrs: []netip.Prefix{pfx("172.17.0.1/16")}})
		f.Reached.Addresses = append(f.Reached.Addresses, control.Address{IP: ip(own), Interface: ifname,
			Proofs: []control.Proof{{Kind: discovery.ProofUnreached, By: "PEER", Trust: trust, Detail: outcome}, {Kind: discovery.ProofSelf}}})
		return f
	}
	cases := []struct {
		name, ifname, own, trust, outcome, want, cause string
	}{
		{"docker bridge, peer not on it", "docker0", "172.17.0.1", "", discovery.ProbeTimeout, "not-reached-other-link", ""},
		{"docker bridge, paired peer not on it", "docker0", "172.17.0.1", discovery.TrustPaired, discovery.ProbeRefused, "not-reached-other-link", ""},
		{"LAN, stranger timeout", "eth0", "192.168.1.11", discovery.TrustStranger, discovery.ProbeTimeout, "not-reached-unconfirmed", ""},
		{"LAN, verified timeout", "eth0", "192.168.1.11", discovery.TrustVerified, discovery.ProbeTimeout, "not-reached-unconfirmed", ""},
		{"LAN, paired timeout", "eth0", "192.168.1.11", discovery.TrustPaired, discovery.ProbeTimeout, "host-filter-inbound", CauseHostFilter},
		{"LAN, prohibited", "eth0", "192.168.1.11", discovery.TrustStranger, discovery.ProbeProhibited, "host-filter-inbound", CauseHostFilter},
		{"LAN, reset", "eth0", "192.168.1.11", "", discovery.ProbeRefused, "host-filter-inbound", CauseHostFilter},
		{"LAN link-local, paired timeout", "eth0", "fe80::1%eth0", discovery.TrustPaired, discovery.ProbeTimeout, "host-filter-inbound", CauseHostFilter},
		{"docker link-local, paired timeout", "docker0", "fe80::2%docker0", discovery.TrustPaired, discovery.ProbeTimeout, "not-reached-other-link", ""},
		{"LAN, unreachable", "eth0", "192.168.1.11", discovery.TrustPaired, discovery.ProbeUnreachable, "not-reached-unconfirmed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			allowed := []string{}
			if c.cause != "" {
				allowed = append(allowed, c.cause)
			}
			steps, fs := analyze(t, base(c.ifname, c.own, c.trust, c.outcome), allowed...)
			if findingOf(fs, c.want) == nil {
				t.Fatalf("want %s: %+v", c.want, fs)
			}
			s := stepOf(t, steps, StepReached)
			if (c.cause != "") != (s.Status == Warn) || c.cause != "" && !strings.Contains(s.Hint, "on "+c.ifname) {
				t.Fatalf("%+v", s)
			}
		})
	}
	// A rule of this host's filter that drops the pairing port is
	// evidence too, even for a stranger's timeout.
	f := base("eth0", "192.168.1.11", "", discovery.ProbeTimeout)
	f.Filter.Verdicts = append(f.Filter.Verdicts, FilterVerdict{Packet: "tcp 4000 (pairing port)", Proto: "tcp", Port: 4000, Verdict: "drop", Certain: true, Table: "inet fw", Chain: "input", Handle: 7})
	_, fs := analyze(t, f, CauseHostFilter)
	if v := findingOf(fs, "host-filter-inbound"); v == nil || !strings.Contains(v.Text, "inet fw chain input drops it") {
		t.Fatalf("%+v", fs)
	}
}

// TestAnalysisHostFilterUDP: this host's filter drops discovery while
// the pairing port is open: the host's filter is named, not the network.
func TestAnalysisHostFilterUDP(t *testing.T) {
	f := baseFacts()
	f.Filter.Verdicts[0] = FilterVerdict{Packet: "udp 27280 (beacon)", Proto: "udp", Port: 27280, Verdict: "drop", Certain: true, Table: "inet fw", Chain: "input", Handle: 5, Rule: "udp dport 27280 drop"}
	f.Peers.Peers = nil
	f.Paired.Devices = []PairedProbe{{Name: "b", ID: "PEER", Addresses: []netip.Addr{ip("192.168.1.20")}, Port: 4001, Reachable: true, At: ip("192.168.1.20")}}
	steps, fs := analyze(t, f, CauseHostFilter)
	p := stepOf(t, steps, StepPeers)
	if p.Status != Warn || !strings.Contains(p.Error, "this host's own packet filter") || !strings.Contains(p.Error, "inet fw chain input") || strings.Contains(p.Error+p.Hint, "router") || strings.Contains(p.Error+p.Hint, "network filters") {
		t.Fatalf("peers %+v", p)
	}
	if s := stepOf(t, steps, StepFilter); s.Status != Warn || !strings.Contains(s.Hint, "nft insert rule inet fw input udp dport 27280 accept") {
		t.Fatalf("filter %+v", s)
	}
	if findingOf(fs, "no-multicast-from-peer") != nil {
		t.Fatalf("%+v", fs)
	}
}

// TestAnalysisAloneWithPhone: no other pairing device, a phone in the
// ARP table: a warning that says what is known; nothing fails.
func TestAnalysisAloneWithPhone(t *testing.T) {
	f := baseFacts()
	f.Peers.Peers, f.PeerReach.Peers = nil, nil
	f.Neighbours = &NeighbourFacts{Entries: []Neighbour{{Addr: ip("192.168.1.30"), Interface: "eth0", State: "REACHABLE"}, {Addr: ip("192.168.1.1"), Interface: "eth0", State: "STALE"}}}
	steps, fs := analyze(t, f)
	p := stepOf(t, steps, StepPeers)
	if p.Status != Warn || !strings.Contains(p.Error, "discovery between computers cannot be checked here") || !strings.Contains(p.Error, "1 other device on this LAN (192.168.1.30)") || !strings.Contains(p.Hint, "pairing by QR code does not need discovery") {
		t.Fatalf("%+v", p)
	}
	for _, s := range steps {
		if s.Status == Fail {
			t.Errorf("%s fails: %s", s.Name, s.Error)
		}
	}
	if n := len(fs); n != 1 {
		t.Errorf("%d findings: %+v", n, fs)
	}
}

// TestAnalysisIsolation: client isolation only with positive evidence.
func TestAnalysisIsolation(t *testing.T) {
	f := baseFacts()
	f.PeerReach.Peers[0].Dials[0].Outcome = DialTimeout
	f.PeerReach.Peers[0].Small, f.PeerReach.Peers[0].Large = "", ""
	f.PeerReach.Peers[0].Neighbours = map[string]string{"192.168.1.20": "FAILED"}
	// No gateway answered: nothing positive.
	f.Peers.Gateways = []GatewayProbe{{Addr: ip("192.168.1.1"), Interface: "eth0", TCP: DialResult{Outcome: DialTimeout}, Neighbour: "FAILED"}}
	_, fs := analyze(t, f)
	if findingOf(fs, "peer-unreachable") == nil {
		t.Fatalf("%+v", fs)
	}
	f.Peers.Gateways[0].TCP.Outcome = DialRefused
	steps, fs := analyze(t, f, CauseIsolation)
	if v := findingOf(fs, "client-isolation"); v == nil || !strings.Contains(v.Text, "gateway 192.168.1.1") {
		t.Fatalf("%+v", fs)
	}
	if s := stepOf(t, steps, StepPeerReach); s.Status != Warn || !strings.Contains(s.Hint, "client isolation") {
		t.Fatalf("%+v", s)
	}
	// It answers ARP: a filter drops TCP, not isolation.
	f.PeerReach.Peers[0].Neighbours["192.168.1.20"] = "REACHABLE"
	if _, fs := analyze(t, f, CausePeerFilter); findingOf(fs, "peer-drops-tcp") == nil {
		t.Fatalf("%+v", fs)
	}
	// Prohibited: the peer's filter said so.
	f.PeerReach.Peers[0].Dials[0] = DialResult{Target: "192.168.1.20:4001", Outcome: DialProhibited, Error: "ICMP administratively prohibited from 192.168.1.20"}
	if _, fs := analyze(t, f, CausePeerFilter); findingOf(fs, "peer-prohibited") == nil || !strings.Contains(findingOf(fs, "peer-prohibited").Text, "on b") {
		t.Fatalf("%+v", fs)
	}
}

// TestAnalysisReflector: a peer found by mDNS off our subnets crossed a
// reflector; nothing says discovery does not cross routers.
func TestAnalysisReflector(t *testing.T) {
	f := baseFacts()
	f.Peers.Peers[0].Sources = []string{discovery.SourceMDNS}
	f.Peers.Peers[0].Addresses = []PeerAddr{{Addr: ip("10.2.0.5"), Route: "eth0", RouteClass: discovery.ClassLAN}}
	f.MDNS.Found = []MDNSPeer{{ID: "PEER", Name: "b", Addresses: []PeerAddr{{Addr: ip("10.2.0.5")}}}}
	_, fs := analyze(t, f)
	if findingOf(fs, "mdns-reflector") == nil || findingOf(fs, "mdns-crosses-router") == nil {
		t.Fatalf("%+v", fs)
	}
	for _, x := range fs {
		if strings.Contains(x.Text+x.Hint, "do not cross routers") {
			t.Errorf("%+v", x)
		}
	}
}

// TestAnalysisDaemonElsewhere: without the right socket, the local
// daemon answers discovery from our own addresses: it is not a peer, and
// the report says where to look instead of "no daemon".
func TestAnalysisDaemonElsewhere(t *testing.T) {
	f := baseFacts()
	f.Daemon = &DaemonFacts{Socket: "/run/pairing/pairing.sock", Error: "no pairing daemon is running", Tried: []SocketTry{{"/run/pairing/pairing.sock", "no daemon"}}}
	f.Peers.Self = f.Peers.Peers
	f.Peers.Self[0].Why = "every address it announces is this host's"
	f.Peers.Peers, f.PeerReach.Peers = nil, nil
	steps, _ := analyze(t, f)
	d := stepOf(t, steps, StepDaemon)
	if d.Status != Warn || !strings.Contains(d.Error, "a pairing daemon runs on this host") || !strings.Contains(d.Hint, "--socket") {
		t.Fatalf("%+v", d)
	}
}

// TestAnalysisPairedOffLink: a paired device answering from another
// subnet is positive evidence of a router in between.
func TestAnalysisPairedOffLink(t *testing.T) {
	f := baseFacts()
	f.Peers.Peers, f.PeerReach.Peers = nil, nil
	f.Paired.Devices = []PairedProbe{{Name: "b", Addresses: []netip.Addr{ip("10.2.0.5")}, Port: 4001, Reachable: true, At: ip("10.2.0.5")}}
	steps, _ := analyze(t, f, CauseRouter)
	if s := stepOf(t, steps, StepPeers); s.Status != Warn || !strings.Contains(s.Error, "on another subnet") {
		t.Fatalf("%+v", s)
	}
	f.Paired.Devices[0].Addresses, f.Paired.Devices[0].At = []netip.Addr{ip("192.168.1.20")}, ip("192.168.1.20")
	steps, _ = analyze(t, f)
	if s := stepOf(t, steps, StepPeers); s.Status != Warn || !strings.Contains(s.Error, "no multicast received from any peer while unicast to b") {
		t.Fatalf("%+v", s)
	}
}
