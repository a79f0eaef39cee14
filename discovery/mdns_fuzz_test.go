package discovery

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

// fuzzZone is the zone of a device "fuzz" at 10.0.0.1 and fd00::1.
func fuzzZone(t testing.TB) *mdns.MDNSService {
	a := &Advertiser{Name: "fuzz", Fingerprint: ident.Of([]byte("fuzz")), Port: 4242}
	z, err := a.zone([]net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("fd00::1")})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func mdnsSeeds(t testing.TB) [][]byte {
	z := fuzzZone(t)
	ptr := dns.Question{Name: MDNSService + ".local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	var out [][]byte
	for _, m := range []*dns.Msg{
		{MsgHdr: dns.MsgHdr{Id: 77}, Question: []dns.Question{ptr}},
		{Question: []dns.Question{{Name: ptr.Name, Qtype: dns.TypePTR, Qclass: dns.ClassINET | qClassUnicast}}},
		{Question: []dns.Question{{Name: z.HostName, Qtype: dns.TypeA, Qclass: dns.ClassINET}, ptr}},
		answerMsg(z.Records(ptr)),
	} {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out, nil, []byte{0, 0, 0x84, 0})
}

// FuzzMDNSAnswer: any datagram to the responder gets no answer or a
// well-formed one; a legacy query's answer carries its ID and question
// and TTLs of at most 10 s.
func FuzzMDNSAnswer(f *testing.F) {
	for _, b := range mdnsSeeds(f) {
		f.Add(b, uint16(mdnsPort))
		f.Add(b, uint16(40000))
	}
	z := fuzzZone(f)
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		uni, multi := answer(z, b, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port))
		if len(multi) > maxQuestions {
			t.Fatalf("%d questions to answer", len(multi))
		}
		if uni == nil {
			return
		}
		if _, err := uni.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
		var q dns.Msg
		if err := q.Unpack(b); err != nil {
			t.Fatalf("answered an undecodable query: %v", err)
		}
		if port == mdnsPort {
			return
		}
		if uni.Id != q.Id || len(uni.Question) != len(q.Question) {
			t.Fatalf("legacy answer ID %d, %d questions; query %d, %d", uni.Id, len(uni.Question), q.Id, len(q.Question))
		}
		for _, rr := range uni.Answer {
			if rr.Header().Ttl > legacyTTLMax {
				t.Fatalf("legacy TTL %d", rr.Header().Ttl)
			}
		}
	})
}

// FuzzMDNSBrowseAnswer: any answer to a browse yields only entries with a
// fingerprint, a port and 1 to beacon.MaxAddrs addresses.
func FuzzMDNSBrowseAnswer(f *testing.F) {
	for _, b := range mdnsSeeds(f) {
		f.Add(b)
	}
	links := &Links{Interfaces: func() ([]net.Interface, error) { return nil, nil }}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil {
			return
		}
		c := mdnsCollector{links: links, logger: slog.New(slog.DiscardHandler)}
		for _, via := range []string{MDNSViaLegacy, MDNSViaMulticast} {
			for _, e := range c.add(mdnsPacket{m, "eth0", netip.MustParseAddr("10.0.0.9"), via}) {
				pk := e.Event.Packet
				if pk.Fingerprint.IsZero() || pk.Port == 0 || len(pk.Addrs) == 0 || len(pk.Addrs) > beacon.MaxAddrs || e.Answer.Via != via {
					t.Fatalf("entry %+v %+v", pk, e.Answer)
				}
			}
		}
	})
}
