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

// maxProofs caps the proofs one address keeps: one per kind and giver,
// strangers' dropped first.
const maxProofs = 8

// Trusted reports whether the proof's giver may order the addresses: a
// paired device, or one pairing now.
func (p Proof) Trusted() bool { return p.Trust == TrustPaired || p.Trust == TrustPairing }

// identified reports whether the giver proved who it is (its TLS key).
func (p Proof) identified() bool { return p.Trusted() || p.Trust == TrustVerified }

// proofOf returns the address's latest proof of kind, if any.
func (a Address) proofOf(kind string) (Proof, bool) {
	return a.latest(func(p Proof) bool { return p.Kind == kind })
}

// latest returns the latest of the address's proofs that match.
func (a Address) latest(match func(Proof) bool) (Proof, bool) {
	var best Proof
	found := false
	for _, p := range a.Proofs {
		if match(p) && (!found || p.At.After(best.At)) {
			best, found = p, true
		}
	}
	return best, found
}

// addProof sets the address's proof of p's kind from p's giver at p's
// trust (one per kind, giver and trust, the latest: a device's request
// as a stranger never replaces its reverse probe), at most maxProofs: a stranger's oldest
// goes first.
func (a *Address) addProof(p Proof) {
	// A new slice: copies of the address handed out share the old one.
	ps := slices.DeleteFunc(slices.Clone(a.Proofs), func(x Proof) bool { return x.Kind == p.Kind && x.By == p.By && x.Trust == p.Trust })
	ps = append(ps, p)
	for len(ps) > maxProofs {
		victim := 0
		for i, x := range ps {
			v := ps[victim]
			if x.identified() != v.identified() {
				if !x.identified() {
					victim = i
				}
				continue
			}
			if x.At.Before(v.At) {
				victim = i
			}
		}
		ps = slices.Delete(ps, victim, victim+1)
	}
	slices.SortStableFunc(ps, func(x, y Proof) int { return cmp.Or(proofOrder(x.Kind)-proofOrder(y.Kind), y.At.Compare(x.At)) })
	a.Proofs = ps
}

func proofOrder(kind string) int {
	return slices.Index([]string{ProofReached, ProofSeen, ProofSelf, ProofUnreached}, kind)
}

// notReached decides whether the address's not-reached proofs move its
// rank. A paired device's counts when it is newer than the last reach
// by a paired or pairing device. Otherwise two identified devices must
// agree, and no identified device may have reached the address since:
// a reach is a connection that really arrived, a not-reached only a
// claim, so a device that proved its key (or two made up by one
// stranger) cannot talk away a proof. It returns the proof to name, and
// whether it counts.
func (a Address) notReached(now time.Time) (Proof, bool) {
	lastTrusted, lastIdentified := time.Time{}, time.Time{}
	for _, p := range a.Proofs {
		if p.Kind != ProofReached || now.Sub(p.At) >= ReachedFresh {
			continue
		}
		if p.Trusted() && p.At.After(lastTrusted) {
			lastTrusted = p.At
		}
		if p.identified() && p.At.After(lastIdentified) {
			lastIdentified = p.At
		}
	}
	var paired, first Proof
	var isPaired bool
	givers := map[string]bool{}
	for _, p := range a.Proofs {
		if p.Kind != ProofUnreached || !p.identified() {
			continue
		}
		if p.Trust == TrustPaired && p.At.After(lastTrusted) && (!isPaired || p.At.After(paired.At)) {
			paired, isPaired = p, true
		}
		if p.At.After(lastIdentified) {
			if len(givers) == 0 {
				first = p
			}
			givers[p.By] = true
		}
	}
	if isPaired {
		return paired, true
	}
	return first, len(givers) >= 2
}

// rankAddresses fills in each address's link facts and rank, and sorts
// them best first: addresses that a paired or pairing device reached
// recently; then LAN links with carrier; then the rest; below all of
// these tunnels and VPNs, virtual links, links without carrier and
// addresses that a paired device, or two identified devices, could not
// reach. A stranger's proofs are kept and move nothing. Ties keep IPv4
// before ULA and global IPv6 before link-local, then the order of the
// stages.
func rankAddresses(addrs []Address, links map[string]LinkFacts, now time.Time) {
	for i := range addrs {
		a := &addrs[i]
		f, ok := links[a.Interface]
		if ok {
			a.Link = &f
		}
		reached, isReached := a.latest(func(p Proof) bool { return p.Kind == ProofReached && p.Trusted() })
		isReached = isReached && now.Sub(reached.At) < ReachedFresh
		unreached, isUnreached := a.notReached(now)
		switch {
		case ok && f.Class == ClassTunnel:
			a.Rank, a.RankReason = RankDemoted, fmt.Sprintf("%s is %s: phones on the LAN cannot reach it", a.Interface, f.Why)
		case ok && f.Class == ClassVirtual:
			a.Rank, a.RankReason = RankDemoted, fmt.Sprintf("%s is %s: devices on the LAN rarely reach it", a.Interface, f.Why)
		case ok && !f.Carrier:
			a.Rank, a.RankReason = RankDemoted, fmt.Sprintf("%s has no carrier (cable out or Wi-Fi gone; operstate %s)", a.Interface, f.OperState)
		case isUnreached:
			a.Rank, a.RankReason = RankDemoted, unreachedReason(unreached)
		case isReached:
			a.Rank, a.RankReason = RankReached, fmt.Sprintf("%s device %s reached it %s ago", reached.Trust, reached.By, now.Sub(reached.At).Round(time.Second))
		case ok && f.Class == ClassLAN:
			a.Rank, a.RankReason = RankLAN, fmt.Sprintf("%s is %s with carrier; no paired device has reached it yet", a.Interface, f.Why)
		default:
			a.Rank, a.RankReason = RankOther, "the kernel says nothing about "+orDash(a.Interface)+"; no paired device has reached it yet"
		}
		if a.Rank == RankDemoted && isReached {
			a.RankReason += fmt.Sprintf("; %s reached it %s ago", reached.By, now.Sub(reached.At).Round(time.Second))
		}
	}
	slices.SortStableFunc(addrs, func(x, y Address) int {
		return cmp.Or(x.Rank-y.Rank, boolInt(!x.hasTrustedReach(now))-boolInt(!y.hasTrustedReach(now)),
			family(x.IP)-family(y.IP), identifiedOrder(x, y, now))
	})
}

// unreachedReason says what a counted not-reached shows, naming a
// filter only when an ICMP "administratively prohibited" came back.
func unreachedReason(p Proof) string {
	switch p.Detail {
	case ProbeProhibited:
		return fmt.Sprintf("%s device %s dialled it and got ICMP administratively prohibited: a packet filter (here or between) rejects it", p.Trust, p.By)
	case ProbeRefused:
		return fmt.Sprintf("%s device %s dialled it and got a reset: something there refuses the pairing port", p.Trust, p.By)
	case ProbeUnreachable:
		return fmt.Sprintf("%s device %s dialled it and its network could not deliver (host unreachable)", p.Trust, p.By)
	}
	return fmt.Sprintf("%s device %s dialled it and nothing arrived (%s)", p.Trust, p.By, cmp.Or(p.Detail, "no answer"))
}

// identifiedOrder puts first, among addresses equal so far (rank, a
// paired or pairing device's reach, family), the one that a device which
// proved its key (a reverse probe) reached recently: such a device can
// only break a tie that the link facts left, and only on a link it
// shares with us. A stranger's request never orders.
func identifiedOrder(x, y Address, now time.Time) int {
	reached := func(a Address) int {
		if _, ok := a.latest(func(p Proof) bool { return p.Kind == ProofReached && p.identified() && now.Sub(p.At) < ReachedFresh }); ok {
			return 0
		}
		return 1
	}
	return reached(x) - reached(y)
}

// hasTrustedReach reports whether a paired or pairing device reached the
// address recently.
func (a Address) hasTrustedReach(now time.Time) bool {
	_, ok := a.latest(func(p Proof) bool { return p.Kind == ProofReached && p.Trusted() && now.Sub(p.At) < ReachedFresh })
	return ok
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
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
