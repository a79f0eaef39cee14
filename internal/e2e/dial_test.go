package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/lantest"
)

// TestDialOutcomes: a connect that a filter rejects with ICMP
// "administratively prohibited" (firewalld's default reject), one it
// drops, one refused by the host (no listener), a reset sent by a filter,
// and one to an address nobody holds are five outcomes, IPv4 and IPv6:
// the first is positive evidence of a filter, the others are not.
func TestDialOutcomes(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	lantest.RequireRoot(t)
	l := lantest.New(t)
	seg := l.Segment()
	a, b := l.Host("a"), l.Host("b")
	a.Attach(seg, "10.7.0.1/24", "fd07::1/64")
	b.Attach(seg, "10.7.0.2/24", "fd07::2/64")
	if _, stderr, err := a.RunInput(`table inet f {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 7001 reject with icmpx admin-prohibited
		tcp dport 7002 drop
		tcp dport 7004 reject with tcp reset
	}
}`, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v %s", err, stderr)
	}
	want := map[string]string{
		"10.7.0.1:7001": discovery.ProbeProhibited, "[fd07::1]:7001": discovery.ProbeProhibited,
		"10.7.0.1:7002": discovery.ProbeTimeout, "[fd07::1]:7002": discovery.ProbeTimeout,
		"10.7.0.1:7003": discovery.ProbeRefused, "[fd07::1]:7003": discovery.ProbeRefused,
		"10.7.0.1:7004": discovery.ProbeRefused, "[fd07::1]:7004": discovery.ProbeRefused,
		"10.7.0.9:7003": discovery.ProbeUnreachable, "[fd07::9]:7003": discovery.ProbeUnreachable,
	}
	var targets []string
	for k := range want {
		targets = append(targets, k)
	}
	out := b.RunTest(t, "TestHelperDialOutcomes", "DIAL_TARGETS="+strings.Join(targets, ","))
	for target, outcome := range want {
		if !strings.Contains(out, fmt.Sprintf("OUTCOME %s %s\n", target, outcome)) {
			t.Errorf("%s: want %s in\n%s", target, outcome, out)
		}
	}
}

func TestHelperDialOutcomes(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a namespace; see TestDialOutcomes")
	}
	type res struct{ target, outcome string }
	ch := make(chan res)
	targets := strings.Split(os.Getenv("DIAL_TARGETS"), ",")
	for _, target := range targets {
		go func() {
			// An address nobody holds: neighbour discovery gives up
			// after about 3 s.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if strings.HasSuffix(target, ":7002") {
				ctx, cancel = context.WithTimeout(context.Background(), time.Second)
				defer cancel()
			}
			c, err := discovery.DialClassified(ctx, netip.MustParseAddrPort(target), netip.Addr{})
			outcome := discovery.ProbeArrived
			if err != nil {
				outcome = err.(*discovery.DialError).Outcome
				t.Logf("%s: %v", target, err)
			} else {
				c.Close()
			}
			ch <- res{target, outcome}
		}()
	}
	for range targets {
		r := <-ch
		fmt.Printf("OUTCOME %s %s\n", r.target, r.outcome)
	}
}
