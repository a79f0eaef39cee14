package discovery

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Kinds of Proof, strongest first.
const (
	// ProofReached: another host connected to this address (a peer's
	// observed call, a join, a connect, a reverse probe, a phone loading
	// the page).
	ProofReached = "reached"
	// ProofSeen: a peer reported that it sees us at this address.
	ProofSeen = "seen"
	// ProofSelf: our own listener got a nonce we sent to this address.
	// It travels over loopback: it shows the local stack takes the
	// address, nothing about what other hosts can reach.
	ProofSelf = "self-ping"
	// ProofUnreached: a peer dialled this address for us (a reverse
	// probe) and the connection did not arrive. Its Detail is the
	// probe's outcome (ProbeTimeout, ProbeRefused, ProbeProhibited,
	// ProbeUnreachable).
	ProofUnreached = "not-reached"
)

// Trust of a Proof: who gave it. Only a paired device, or one pairing
// now (a phone loading the page, a join), orders the addresses; a
// stranger's proof is recorded and moves nothing.
const (
	TrustPaired   = "paired"   // a device in the paired store, by its key
	TrustPairing  = "pairing"  // a device pairing now (page, join, offer)
	TrustVerified = "verified" // a device whose TLS key matched its beacon
	TrustStranger = "stranger" // anyone else
)

// ReachedFresh is how long another host's connection counts as recent
// for the ranking.
const ReachedFresh = 10 * time.Minute

// Proof is one piece of evidence about an own address.
type Proof struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	// By is who: a device ID, or the remote address of a stranger.
	By string `json:"by,omitempty"`
	// Via is how: the request path, "beacon report", "reverse probe".
	Via    string `json:"via,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Trust is who By is (TrustPaired … TrustStranger); empty is a
	// stranger.
	Trust string `json:"trust,omitempty"`
}

// Ranks of an Address, best first.
const (
	RankReached  = 1 // another host reached it recently
	RankLAN      = 2 // a LAN link (Ethernet, Wi-Fi) with carrier
	RankOther    = 3 // the rest
	RankDemoted  = 4 // a tunnel or VPN, a virtual link, no carrier, or a peer could not reach it
	rankFamilyV6 = 1
	rankFamilyLL = 2
)

// proofOf returns the address's proof of kind, if any.
func (a Address) proofOf(kind string) (Proof, bool) {
	for _, p := range a.Proofs {
		if p.Kind == kind {
			return p, true
		}
	}
	return Proof{}, false
}

// addProof sets the address's proof of p's kind (one per kind, the
// latest).
func (a *Address) addProof(p Proof) {
	// A new slice: copies of the address handed out share the old one.
	a.Proofs = append(slices.DeleteFunc(slices.Clone(a.Proofs), func(x Proof) bool { return x.Kind == p.Kind }), p)
	slices.SortStableFunc(a.Proofs, func(x, y Proof) int { return proofOrder(x.Kind) - proofOrder(y.Kind) })
}

func proofOrder(kind string) int {
	return slices.Index([]string{ProofReached, ProofSeen, ProofSelf, ProofUnreached}, kind)
}

// rankAddresses fills in each address's link facts and rank, and sorts
// them best first: addresses other hosts reached recently; then LAN links
// with carrier; then the rest; below all of these tunnels and VPNs,
// virtual links, links without carrier and addresses a peer could not
// reach. Ties keep IPv4 before ULA before link-local, then the order of
// the stages.
func rankAddresses(addrs []Address, links map[string]LinkFacts, now time.Time) {
	for i := range addrs {
		a := &addrs[i]
		f, ok := links[a.Interface]
		if ok {
			a.Link = &f
		}
		reached, isReached := a.proofOf(ProofReached)
		isReached = isReached && now.Sub(reached.At) < ReachedFresh
		unreached, isUnreached := a.proofOf(ProofUnreached)
		isUnreached = isUnreached && (!isReached || unreached.At.After(reached.At))
		switch {
		case ok && f.Class == ClassTunnel:
			a.Rank, a.RankReason = RankDemoted, fmt.Sprintf("%s is %s: phones on the LAN cannot reach it", a.Interface, f.Why)
		case ok && f.Class == ClassVirtual:
			a.Rank, a.RankReason = RankDemoted, fmt.Sprintf("%s is %s: devices on the LAN rarely reach it", a.Interface, f.Why)
		case ok && !f.Carrier:
			a.Rank, a.RankReason = RankDemoted, fmt.Sprintf("%s has no carrier (cable out or Wi-Fi gone; operstate %s)", a.Interface, f.OperState)
		case isUnreached:
			a.Rank, a.RankReason = RankDemoted, fmt.Sprintf("%s dialled it for us and nothing arrived (%s): a firewall on this host?", unreached.By, unreached.Detail)
		case isReached:
			a.Rank, a.RankReason = RankReached, fmt.Sprintf("another host (%s) reached it %s ago", reached.By, now.Sub(reached.At).Round(time.Second))
		case ok && f.Class == ClassLAN:
			a.Rank, a.RankReason = RankLAN, fmt.Sprintf("%s is %s with carrier; no other host has reached it yet", a.Interface, f.Why)
		default:
			a.Rank, a.RankReason = RankOther, "the kernel says nothing about "+orDash(a.Interface)+"; no other host has reached it yet"
		}
		if a.Rank == RankDemoted && isReached {
			a.RankReason += fmt.Sprintf("; %s reached it %s ago", reached.By, now.Sub(reached.At).Round(time.Second))
		}
	}
	slices.SortStableFunc(addrs, func(x, y Address) int {
		return cmp.Or(x.Rank-y.Rank, boolOrder(x, y, ProofReached, now), family(x.IP)-family(y.IP), boolOrder(x, y, ProofSeen, now))
	})
}

// boolOrder puts the address with a fresh proof of kind first.
func boolOrder(x, y Address, kind string, now time.Time) int {
	has := func(a Address) int {
		if p, ok := a.proofOf(kind); ok && now.Sub(p.At) < ReachedFresh {
			return 0
		}
		return 1
	}
	return has(x) - has(y)
}

func family(ip netip.Addr) int {
	switch {
	case ip.Is4() && !ip.IsLinkLocalUnicast():
		return 0
	case ip.Is6() && !ip.IsLinkLocalUnicast():
		return rankFamilyV6
	}
	return rankFamilyLL
}

func orDash(s string) string {
	if s == "" {
		return "the interface"
	}
	return s
}
