package daemon

import (
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
)

// fixedTable is a peer table that lists what the test put in it.
type fixedTable []discovery.Peer

func (f *fixedTable) Peers() []discovery.Peer { return slices.Clone(*f) }
func (f *fixedTable) Lookup(fp ident.Fingerprint) []netip.AddrPort {
	for _, p := range *f {
		if p.Fingerprint == fp {
			var out []netip.AddrPort
			for _, a := range p.Addresses {
				out = append(out, netip.AddrPortFrom(a, p.Port))
			}
			return out
		}
	}
	return nil
}

func TestProbeCandidatesInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperProbeCandidates"))
}

// TestHelperProbeCandidates: the devices asked to probe an own address
// are paired ones first, then those that showed their key, then the
// others, the one known longest first; one device per host address;
// only at addresses sharing the target's link (eth0, 10.9.0.1/24 here);
// never ourselves, never a device without a port, never a skipped one.
func TestHelperProbeCandidates(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestProbeCandidatesInNamespace")
	}
	id, err := pairing.LoadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	paired, verified, old, later, sameHost, far, portless := fpOf(1), fpOf(2), fpOf(3), fpOf(4), fpOf(5), fpOf(6), fpOf(7)
	store := openStore(t, pairing.PairedPeer{Fingerprint: paired, Name: "paired", Kind: pairing.KindDevice,
		Addresses: []netip.Addr{ip("10.9.0.20"), ip("192.168.7.8")}, Port: 5000})
	table := &fixedTable{
		{Fingerprint: old, Name: "old", Addresses: []netip.Addr{ip("10.9.0.40")}, Port: 5002},
		{Fingerprint: id.Fingerprint, Name: "self", Addresses: []netip.Addr{ip("10.9.0.1")}, Port: 5009},
	}
	p := newProbes(id, table, &discovery.Links{Interfaces: net.Interfaces}, store)
	target := ip("10.9.0.1")
	ids := func(cs []proberAt) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.id)
		}
		return out
	}
	// old becomes a candidate first: it is known longest.
	if got := ids(p.candidates(target, nil)); !slices.Equal(got, []string{paired.ID(), old.ID()}) {
		t.Fatalf("first round %v", got)
	}
	time.Sleep(time.Millisecond)
	*table = append(*table,
		discovery.Peer{Fingerprint: later, Name: "later", Addresses: []netip.Addr{ip("10.9.0.41")}, Port: 5003},
		discovery.Peer{Fingerprint: sameHost, Name: "same host", Addresses: []netip.Addr{ip("10.9.0.40")}, Port: 5004},
		discovery.Peer{Fingerprint: far, Name: "far", Addresses: []netip.Addr{ip("192.168.7.7")}, Port: 5005},
		discovery.Peer{Fingerprint: portless, Name: "portless", Addresses: []netip.Addr{ip("10.9.0.50")}},
		discovery.Peer{Fingerprint: verified, Name: "verified", Addresses: []netip.Addr{ip("10.9.0.31")}, Port: 5001},
	)
	p.verify(verified, ip("10.9.0.30"))
	p.verify(paired, ip("10.9.0.21"))
	got := p.candidates(target, nil)
	if want := []string{paired.ID(), verified.ID(), old.ID(), later.ID()}; !slices.Equal(ids(got), want) {
		t.Fatalf("candidates %v, want %v (paired, verified, known longest, later)", ids(got), want)
	}
	// Where each is asked: shown-key addresses first, on the target's
	// link only, at its port.
	ap := netip.MustParseAddrPort
	wantAt := [][]netip.AddrPort{
		{ap("10.9.0.21:5000"), ap("10.9.0.20:5000")},
		{ap("10.9.0.30:5001"), ap("10.9.0.31:5001")},
		{ap("10.9.0.40:5002")},
		{ap("10.9.0.41:5003")},
	}
	for i, c := range got {
		if !slices.Equal(c.addrs, wantAt[i]) {
			t.Errorf("%s asked at %v, want %v", c.id, c.addrs, wantAt[i])
		}
	}
	if got[0].trust != discovery.TrustPaired || got[1].trust != discovery.TrustVerified {
		t.Errorf("trust %s, %s; want paired, verified", got[0].trust, got[1].trust)
	}
	if got := ids(p.candidates(target, []string{verified.ID(), old.ID()})); !slices.Equal(got, []string{paired.ID(), later.ID()}) {
		t.Fatalf("with two skipped: %v", got)
	}
	// An address off every link of ours has no candidates.
	if got := p.candidates(ip("192.0.2.1"), nil); len(got) != 0 {
		t.Fatalf("target off our links: %v", ids(got))
	}
}

func TestReconfigureInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperReconfigure"))
}

// TestHelperReconfigure: the status a running daemon assembles (device,
// addresses, window, paired counts, beacon), and a config reload: the
// name and log level change live, ignoring the only interface takes its
// address away and un-ignoring brings it back, and what needs a restart
// is named.
func TestHelperReconfigure(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestReconfigureInNamespace")
	}
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	var level slog.LevelVar
	d, err := Start(Config{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "s.sock"),
		Settings: config.Settings{Name: "helper", LogLevel: "info"}, LogLevel: &level})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	select {
	case <-d.Acquired():
	case <-time.After(10 * time.Second):
		t.Fatal("no acquisition within 10 s")
	}
	st := d.Status()
	if st.Name != "helper" || st.ID != d.id.ID() || st.Version != pairing.Version || st.StateDir != filepath.Join(dir, "state") ||
		len(st.Addresses) == 0 || st.Addresses[0].IP != netip.MustParseAddr("10.9.0.1") || st.Addresses[0].Interface != "eth0" ||
		st.Window.Open || st.Paired != 0 || st.PairedOnline != 0 || st.Peers == nil || len(st.Stages) == 0 {
		t.Fatalf("status at start %+v", st)
	}
	if !slices.Contains(st.Beacon.Joined, "eth0/v4") {
		t.Fatalf("beacon joined %v, want eth0/v4", st.Beacon.Joined)
	}
	if _, err := d.OpenWindow(false, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := d.store.Put(pairing.PairedPeer{Fingerprint: fpOf(9), Name: "away", Kind: pairing.KindDevice}); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(); !st.Window.Open || !st.Window.Expires.After(time.Now()) || st.Paired != 1 || st.PairedOnline != 0 {
		t.Fatalf("status with a window and a paired device away: window %+v, paired %d, online %d", st.Window, st.Paired, st.PairedOnline)
	}

	// The same settings again: nothing changes, nothing needs a restart.
	same := d.cfg.Settings
	if restart := d.Reconfigure(same); len(restart) != 0 {
		t.Fatalf("reloading the same settings: restart %v", restart)
	}
	s := same
	s.Name, s.LogLevel = "renamed", "debug"
	s.Listen, s.MDNS, s.Inbox.Dir = ":1", !same.MDNS, filepath.Join(dir, "elsewhere")
	if restart := d.Reconfigure(s); !slices.Equal(restart, []string{"listen", "mdns", "inbox"}) {
		t.Fatalf("restart %v, want listen, mdns, inbox", restart)
	}
	if st := d.Status(); st.Name != "renamed" || level.Level() != slog.LevelDebug {
		t.Fatalf("after reload: name %q, level %v", st.Name, level.Level())
	}

	// Ignoring eth0 takes its address away; un-ignoring brings it back.
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s; addresses %+v", what, d.Status().Addresses)
			}
		}
	}
	has := func() bool {
		return slices.ContainsFunc(d.Status().Addresses, func(a control.Address) bool { return a.IP == netip.MustParseAddr("10.9.0.1") })
	}
	s = same
	s.IgnoreInterfaces = []string{"eth0"}
	d.Reconfigure(s)
	wait("address gone with eth0 ignored", func() bool { return !has() })
	d.Reconfigure(same)
	wait("address back with eth0 used again", has)
}
