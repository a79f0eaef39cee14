package discovery

import (
	"net/netip"
	"slices"

	"github.com/lanpairing/pairing/discovery/beacon"
)

// How an mDNS answer reached us (MDNSAnswer.Via).
const (
	// MDNSViaLegacy: to the ephemeral port of our legacy unicast query,
	// from the device or from a reflector that relayed the query by its
	// ID (RFC 6762 §6.7).
	MDNSViaLegacy = "legacy-unicast"
	// MDNSViaMulticast: to the mDNS group on port 5353, as responders
	// answer a query from port 5353 and reflectors repeat answers.
	MDNSViaMulticast = "multicast"
	// MDNSViaUnicast: to our port 5353 by unicast (a responder that
	// answers every query by unicast, as hashicorp/mdns's server does).
	MDNSViaUnicast = "unicast"
)

// MDNSEntry is one pairing service resolved from mDNS answers: the event
// a beacon would give, and how the answer came.
type MDNSEntry struct {
	Event  beacon.Event
	Answer MDNSAnswer
}

// MDNSAnswer is what one mDNS answer tells about the way to a device:
// typed facts, no verdict.
type MDNSAnswer struct {
	// Via is how the answer arrived: MDNSViaLegacy, MDNSViaMulticast or
	// MDNSViaUnicast.
	Via string `json:"via"`
	// Sender is the answer's source address: the device itself, or a
	// host that repeated its answer (a reflector).
	Sender netip.Addr `json:"sender"`
	// Interface is our interface the answer came in on.
	Interface string `json:"interface,omitempty"`
	// Addresses are the device's advertised addresses as kept (link-local
	// ones of an off-link device are dropped: they belong to its link).
	Addresses []MDNSAddr `json:"addresses"`
	// OffLink: the device advertises routable addresses and none is on a
	// subnet of ours: it is on another subnet, behind a router.
	OffLink bool `json:"off_link"`
	// Reflected: OffLink, and the answer came from a host on our link
	// that is not the device: an mDNS reflector (or proxy) repeated it.
	Reflected bool `json:"reflected"`
}

// MDNSAddr is one advertised address and whether it is on a subnet of
// ours (or link-local).
type MDNSAddr struct {
	Addr   netip.Addr `json:"addr"`
	OnLink bool       `json:"on_link"`
}

// Heard is how a peer was heard, part of Peer.
type Heard struct {
	// ElapsedMS is, in a discover, the time from the query to the peer's
	// first reply.
	ElapsedMS float64 `json:"elapsed_ms,omitempty"`
	// MDNS is how its mDNS answers came, up to maxMDNSAnswers ways (the
	// latest), each with its facts.
	MDNS []MDNSAnswer `json:"mdns,omitempty"`
}

// maxMDNSAnswers bounds the distinct ways (via, sender, interface) kept
// per peer.
const maxMDNSAnswers = 4

// mdnsFacts works out the facts of an answer from sender (via, on ifname)
// that advertises as, and returns the addresses to use.
func mdnsFacts(links *Links, via string, sender netip.Addr, ifname string, as []netip.Addr) (MDNSAnswer, []netip.Addr) {
	ans := MDNSAnswer{Via: via, Sender: sender, Interface: ifname}
	routable, onlink := 0, 0
	for _, a := range as {
		if !a.IsLinkLocalUnicast() {
			routable++
			if links.OnLink(a) {
				onlink++
			}
		}
	}
	ans.OffLink = routable > 0 && onlink == 0
	if ans.OffLink {
		as = slices.DeleteFunc(slices.Clone(as), netip.Addr.IsLinkLocalUnicast)
	}
	own := slices.ContainsFunc(as, func(a netip.Addr) bool { return a.WithZone("") == sender.WithZone("") })
	ans.Reflected = ans.OffLink && !own && links.OnLink(sender)
	for _, a := range as {
		ans.Addresses = append(ans.Addresses, MDNSAddr{a, links.OnLink(a)})
	}
	return ans, as
}

// sameWay reports whether two answers came the same way.
func (a MDNSAnswer) sameWay(b MDNSAnswer) bool {
	return a.Via == b.Via && a.Sender == b.Sender && a.Interface == b.Interface
}

// withAnswer returns answers with ans in place of the one that came the
// same way (or added, the oldest dropped past maxMDNSAnswers); a new
// slice, so copies handed out earlier stay as they were.
func withAnswer(answers []MDNSAnswer, ans MDNSAnswer) []MDNSAnswer {
	out := slices.DeleteFunc(slices.Clone(answers), ans.sameWay)
	out = append(out, ans)
	if len(out) > maxMDNSAnswers {
		out = out[len(out)-maxMDNSAnswers:]
	}
	return out
}

// ObserveMDNS folds an mDNS entry into the table (as ObserveFrom with
// SourceMDNS) and keeps how its answer came in the peer's MDNS.
func (t *Table) ObserveMDNS(e MDNSEntry) (in, fresh bool) {
	in, fresh = t.ObserveFrom(SourceMDNS, e.Event)
	if !in {
		return in, fresh
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[e.Event.Packet.Fingerprint]; p != nil {
		p.MDNS = withAnswer(p.MDNS, e.Answer)
	}
	return in, fresh
}

// MDNSReflected reports whether an mDNS answer of p's came from another
// subnet through a reflector: what `pairing diag` counts as "found on
// other subnets through an mDNS reflector".
func (p *Peer) MDNSReflected() bool {
	return slices.ContainsFunc(p.MDNS, func(a MDNSAnswer) bool { return a.Reflected })
}
