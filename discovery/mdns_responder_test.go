package discovery

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/internal/mcast"
)

// TestMDNSResponderInNamespace runs the responder for real in a host of a
// simulated LAN (eth0 10.9.0.1/24; the test binary re-runs itself there).
func TestMDNSResponderInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperMDNSResponder"))
}

var helperMe = netip.MustParseAddr("10.9.0.1")

// helperAdvertiser advertises "helper" at 10.9.0.1, port 4242, on eth0.
func helperAdvertiser(t *testing.T) (*Advertiser, ident.Fingerprint) {
	fp := ident.Of([]byte("mdns responder helper"))
	adv := &Advertiser{Name: "helper", Fingerprint: fp, Port: 4242}
	adv.Update([]Address{{IP: helperMe, Interface: "eth0"}})
	if adv.resp == nil {
		t.Fatal("no responder")
	}
	return adv, fp
}

// TestHelperMDNSResponder: a legacy unicast query (random ID, from an
// ephemeral port), to the group or straight to our address, gets a
// unicast answer with its ID and question and TTLs of at most 10 s
// (RFC 6762 §6.7); a query from port 5353 gets a multicast answer with
// ID 0; a query from an off-link source gets none; hostile input is
// dropped; a flood of queries gets at most one multicast answer a second.
func TestHelperMDNSResponder(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestMDNSResponderInNamespace")
	}
	adv, _ := helperAdvertiser(t)
	defer adv.Close()
	eth0, err := net.InterfaceByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	group := netip.AddrPortFrom(mdnsGroup4, mdnsPort)
	question := dns.Question{Name: MDNSService + ".local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}

	legacy, err := mcast.Listen(false, 0, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer legacy.Close()
	legacyIn := responses(legacy)
	for range 3 {
		q := &dns.Msg{MsgHdr: dns.MsgHdr{Id: dns.Id() | 1}, Question: []dns.Question{question}}
		send(t, legacy, q, group, eth0.Index)
		r := next(t, legacyIn)
		if r.m.Id != q.Id || len(r.m.Question) != 1 || r.m.Question[0] != question {
			t.Fatalf("legacy query (ID %d): answer ID %d, question %v; want the query's", q.Id, r.m.Id, r.m.Question)
		}
		if r.src != netip.AddrPortFrom(helperMe, mdnsPort) || r.dst.IsMulticast() {
			t.Errorf("legacy answer %s → %s, want unicast from %s:5353", r.src, r.dst, helperMe)
		}
		checkRecords(t, r.m)
		for _, rr := range r.m.Answer {
			if rr.Header().Ttl > legacyTTLMax {
				t.Errorf("legacy answer TTL %d > %d: %s", rr.Header().Ttl, legacyTTLMax, rr)
			}
		}
	}

	// A multicast query from port 5353: the answer goes to the group.
	shared, err := mcast.Listen(false, mdnsPort, 255)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	if err := shared.Join(eth0, mdnsGroup4); err != nil {
		t.Fatal(err)
	}
	sharedIn := responses(shared)
	send(t, shared, &dns.Msg{Question: []dns.Question{question}}, group, eth0.Index)
	r := next(t, sharedIn)
	if r.m.Id != 0 || len(r.m.Question) != 0 || r.dst != mdnsGroup4 || r.src != netip.AddrPortFrom(helperMe, mdnsPort) {
		t.Fatalf("multicast answer: ID %d, %d questions, %s → %s; want ID 0, none, from %s:5353 to the group", r.m.Id, len(r.m.Question), r.src, r.dst, helperMe)
	}
	checkRecords(t, r.m)

	// A legacy query from an off-link source (an address on lo, outside
	// every subnet of ours) to the group on eth0: no answer.
	if out, err := exec.Command("ip", "addr", "add", "192.0.2.1/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip addr: %v %s", err, out)
	}
	off, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if err := ipv4.NewPacketConn(off).SetMulticastInterface(eth0); err != nil {
		t.Fatal(err)
	}
	qb, _ := (&dns.Msg{MsgHdr: dns.MsgHdr{Id: 7}, Question: []dns.Question{question}}).Pack()
	if _, err := off.WriteToUDPAddrPort(qb, group); err != nil {
		t.Fatal(err)
	}
	off.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := off.ReadFromUDPAddrPort(make([]byte, maxMDNSPacket)); err == nil {
		t.Fatalf("an off-link source got a %d-byte answer", n)
	}

	// Hostile input to the group, then a valid query is answered.
	resp := &dns.Msg{MsgHdr: dns.MsgHdr{Id: 9, Response: true}, Question: []dns.Question{question}}
	rb, _ := resp.Pack()
	many := &dns.Msg{MsgHdr: dns.MsgHdr{Id: 10}}
	for range 1000 {
		many.Question = append(many.Question, question)
	}
	mb, _ := many.Pack()
	for _, b := range [][]byte{nil, {0}, qb[:5], qb[:len(qb)-1], rb, mb, make([]byte, maxMDNSPacket)} {
		legacy.WriteTo(b, group, eth0.Index)
	}
	for {
		q := &dns.Msg{MsgHdr: dns.MsgHdr{Id: 4242}, Question: []dns.Question{question}}
		send(t, legacy, q, group, eth0.Index)
		if r := next(t, legacyIn); r.m.Id == 4242 {
			break
		} else if r.m.Id != 10 {
			t.Fatalf("after hostile input: answer ID %d", r.m.Id)
		}
	}

	// A flood of multicast queries: at most one answer per second on
	// the group (plus one at the start and one pending at the end).
	start := time.Now()
	answers := 0
	qm, _ := (&dns.Msg{Question: []dns.Question{question}}).Pack()
	for time.Since(start) < 1500*time.Millisecond {
		for range 50 {
			shared.WriteTo(qm, group, eth0.Index)
		}
		answers += count(sharedIn, 20*time.Millisecond)
	}
	answers += count(sharedIn, 1500*time.Millisecond)
	if limit := int(time.Since(start)/multicastGap) + 2; answers > limit {
		t.Fatalf("%d multicast answers to a flood in %s; at most %d allowed", answers, time.Since(start), limit)
	}
	t.Logf("%d multicast answers to a flood in %s", answers, time.Since(start).Round(time.Millisecond))
}

func send(t *testing.T, c *mcast.Conn, m *dns.Msg, to netip.AddrPort, ifindex int) {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteTo(b, to, ifindex); err != nil {
		t.Fatal(err)
	}
}

// received is one DNS response as it arrived.
type received struct {
	m   *dns.Msg
	src netip.AddrPort
	dst netip.Addr
}

// responses reads the DNS responses that arrive on c (queries, ours
// looped back, are skipped) until c is closed.
func responses(c *mcast.Conn) <-chan received {
	ch := make(chan received, 1024)
	go func() {
		defer close(ch)
		buf := make([]byte, maxMDNSPacket)
		for {
			n, src, _, dst, err := c.ReadDst(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) == nil && m.Response {
				select {
				case ch <- received{m, src, dst}:
				default:
				}
			}
		}
	}()
	return ch
}

// next is the next response, waiting at most 5 s.
func next(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("socket closed")
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no answer within 5 s")
	}
	return received{}
}

// count counts the responses that arrive within d.
func count(ch <-chan received, d time.Duration) int {
	n := 0
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return n
			}
			n++
		case <-timeout:
			return n
		}
	}
}

// checkRecords checks that m carries the helper's service: PTR, SRV (port
// 4242), TXT and A 10.9.0.1.
func checkRecords(t *testing.T, m *dns.Msg) {
	t.Helper()
	var ptr, srv, txt, a bool
	for _, rr := range m.Answer {
		switch r := rr.(type) {
		case *dns.PTR:
			ptr = true
		case *dns.SRV:
			srv = r.Port == 4242
		case *dns.TXT:
			txt = slices.Contains(r.Txt, "n=helper")
		case *dns.A:
			a = a || r.A.Equal(net.IP(helperMe.AsSlice()))
		}
	}
	if !ptr || !srv || !txt || !a {
		t.Fatalf("answer lacks records (PTR %v SRV %v TXT %v A %v):\n%s", ptr, srv, txt, a, m)
	}
}

// TestMDNSBrowseInNamespace: BrowseMDNS in the same process as the
// responder finds it both ways (legacy unicast and multicast), on link;
// and the facts of answers from other subnets.
func TestMDNSBrowseInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperMDNSBrowse"))
}

func TestHelperMDNSBrowse(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestMDNSBrowseInNamespace")
	}
	adv, fp := helperAdvertiser(t)
	defer adv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	vias := map[string]MDNSAnswer{}
	err := BrowseMDNS(ctx, nil, nil, func(e MDNSEntry) {
		if e.Event.Packet.Fingerprint != fp {
			return
		}
		vias[e.Answer.Via] = e.Answer
		if len(vias) == 2 {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, via := range []string{MDNSViaLegacy, MDNSViaMulticast} {
		ans, ok := vias[via]
		if !ok {
			t.Errorf("no answer via %s: %+v", via, vias)
			continue
		}
		// The answer may come over either family: from our IPv4 address
		// or our own link-local one.
		fromUs := ans.Sender == helperMe || ans.Sender.Is6() && ans.Sender.IsLinkLocalUnicast()
		if ans.OffLink || ans.Reflected || !fromUs || len(ans.Addresses) != 1 || ans.Addresses[0] != (MDNSAddr{helperMe, true}) {
			t.Errorf("answer via %s: %+v; want on link from %s", via, ans, helperMe)
		}
	}

	links := &Links{}
	ll := netip.MustParseAddr("fe80::1").WithZone("eth0")
	for _, c := range []struct {
		name               string
		sender             netip.Addr
		as, want           []netip.Addr
		offLink, reflected bool
	}{
		{"on link", netip.MustParseAddr("10.9.0.7"), addrs("10.9.0.7", "fd00::7"), addrs("10.9.0.7", "fd00::7"), false, false},
		{"through a reflector", netip.MustParseAddr("10.9.0.254"), append(addrs("10.2.0.2"), ll), addrs("10.2.0.2"), true, true},
		{"routed, from itself", netip.MustParseAddr("10.2.0.2"), addrs("10.2.0.2"), addrs("10.2.0.2"), true, false},
		{"link-local only", ll, []netip.Addr{ll}, []netip.Addr{ll}, false, false},
	} {
		ans, as := mdnsFacts(links, MDNSViaMulticast, c.sender, "eth0", c.as)
		if !slices.Equal(as, c.want) || ans.OffLink != c.offLink || ans.Reflected != c.reflected || len(ans.Addresses) != len(c.want) {
			t.Errorf("%s: %+v, addresses %v; want off link %v, reflected %v, %v", c.name, ans, as, c.offLink, c.reflected, c.want)
		}
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}
