package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/session"
)

// fpOf is a fingerprint made of n (tests need distinct ones, not keys).
func fpOf(n byte) ident.Fingerprint {
	var fp ident.Fingerprint
	fp[0], fp[31] = n, n
	return fp
}

func openStore(t *testing.T, peers ...pairing.PairedPeer) *pairing.Store {
	t.Helper()
	s, err := pairing.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if err := s.Put(p); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestOnline: a paired device is online when it was heard (beacon or
// mDNS) or its page holds a connection; a stranger heard is not counted,
// nor a paired device neither heard nor connected.
func TestOnline(t *testing.T) {
	computer, phone, quiet, stranger := fpOf(1), fpOf(2), fpOf(3), fpOf(4)
	store := openStore(t,
		pairing.PairedPeer{Fingerprint: computer, Name: "desk", Kind: pairing.KindDevice},
		pairing.PairedPeer{Fingerprint: phone, Name: "phone", Kind: "phone"},
		pairing.PairedPeer{Fingerprint: quiet, Name: "quiet", Kind: pairing.KindDevice})
	heard := []discovery.Peer{{Fingerprint: computer}, {Fingerprint: stranger}}
	on := online(heard, store, []ident.Fingerprint{phone})
	want := map[ident.Fingerprint]bool{computer: true, phone: true}
	if len(on) != len(want) || !on[computer] || !on[phone] {
		t.Fatalf("online %v, want the heard computer and the connected phone only", on)
	}
	if on := online(nil, store, nil); len(on) != 0 {
		t.Fatalf("nothing heard, no page: online %v", on)
	}
}

// TestPeersView: Status lists the paired devices first, keeps the order
// within each group, and lists at most control.MaxPeers, counting the
// rest.
func TestPeersView(t *testing.T) {
	var heard []discovery.Peer
	paired := map[ident.Fingerprint]bool{}
	for i := range control.MaxPeers + 6 {
		p := discovery.Peer{Fingerprint: fpOf(byte(i + 1)), Name: "d" + string(rune('a'+i%26))}
		p.ID = p.Fingerprint.ID()
		if i%10 == 9 {
			paired[p.Fingerprint] = true
		}
		heard = append(heard, p)
	}
	list, omitted := peersView(heard, func(fp ident.Fingerprint) bool { return paired[fp] })
	if len(list) != control.MaxPeers || omitted != 6 {
		t.Fatalf("%d listed, %d omitted; want %d and 6", len(list), omitted, control.MaxPeers)
	}
	for i, p := range list[:len(paired)] {
		if want := heard[10*i+9].ID; p.ID != want {
			t.Fatalf("entry %d is %s, want the paired %s", i, p.ID, want)
		}
	}
	if list[len(paired)].ID != heard[0].ID {
		t.Fatalf("first unpaired entry %s, want %s", list[len(paired)].ID, heard[0].ID)
	}
	if list, omitted := peersView(nil, func(ident.Fingerprint) bool { return false }); list == nil || len(list) != 0 || omitted != 0 {
		t.Fatalf("no peers: %v, %d; want an empty list (JSON [])", list, omitted)
	}
}

// TestNetworks: the window's networks are one per interface, its best
// usable address, the code's first; demoted addresses and IPv6
// link-local ones (a phone has no zone for them) are left out, and a
// code that leads with an address outside them lists none.
func TestNetworks(t *testing.T) {
	a := func(ip, ifname string, rank int) discovery.Address {
		return discovery.Address{IP: netip.MustParseAddr(ip), Interface: ifname, Rank: rank}
	}
	all := []discovery.Address{
		a("10.0.0.5", "eth0", discovery.RankReached),
		a("fe80::1%wlan0", "wlan0", discovery.RankReached),
		a("10.0.0.6", "eth0", discovery.RankLAN),
		a("::ffff:192.168.1.5", "wlan0", discovery.RankLAN),
		a("172.17.0.1", "docker0", discovery.RankDemoted),
		a("2001:db8::5", "usb0", discovery.RankOther),
	}
	got := networks(all, netip.MustParseAddr("192.168.1.5"))
	want := []control.Network{
		{Interface: "wlan0", Address: netip.MustParseAddr("192.168.1.5")},
		{Interface: "eth0", Address: netip.MustParseAddr("10.0.0.5")},
		{Interface: "usb0", Address: netip.MustParseAddr("2001:db8::5")},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("networks %v, want %v", got, want)
	}
	for _, first := range []string{"172.17.0.1", "10.9.9.9"} {
		if got := networks(all, netip.MustParseAddr(first)); got != nil {
			t.Fatalf("code leading with %s: networks %v, want none", first, got)
		}
	}
}

// TestControlNames: the control API resolves a device by name, name
// prefix or ID (any case, dashes or not) and refuses an unknown or
// ambiguous one with its reason code, which is what the CLI branches on.
func TestControlNames(t *testing.T) {
	mac, pc, phone := fpOf(1), fpOf(2), fpOf(3)
	d := &Daemon{cfg: Config{Logger: slog.New(slog.DiscardHandler)}, store: openStore(t,
		pairing.PairedPeer{Fingerprint: mac, Name: "Desk Mac", Kind: pairing.KindDevice},
		pairing.PairedPeer{Fingerprint: pc, Name: "desk pc", Kind: pairing.KindDevice},
		pairing.PairedPeer{Fingerprint: phone, Name: "phone", Kind: "phone"})}
	d.sess = session.New(session.Config{Store: d.store, Logger: d.cfg.Logger}) // unpair tells a page
	defer d.sess.Close()
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d.controlMux()}
	go srv.Serve(ln)
	defer srv.Close()
	cl := control.NewClient(sock)
	ctx := context.Background()

	for query, reason := range map[string]string{"nobody": control.ReasonUnknownPeer, "desk": control.ReasonAmbiguousPeer} {
		_, err := cl.Rename(ctx, query, "x")
		if control.ReasonOf(err) != reason || err.Error() == "" {
			t.Errorf("rename %q: %v (reason %q), want reason %q", query, err, control.ReasonOf(err), reason)
		}
		_, err = cl.Unpair(ctx, query)
		if control.ReasonOf(err) != reason {
			t.Errorf("unpair %q: %v, want reason %q", query, err, reason)
		}
		_, err = cl.Send(ctx, query, "text", "", 2, strings.NewReader("hi"), "")
		if control.ReasonOf(err) != reason {
			t.Errorf("send to %q: %v, want reason %q", query, err, reason)
		}
	}
	// A whole name (any case) wins over another's prefix.
	p, err := cl.Rename(ctx, "DESK PC", "office")
	if err != nil || p.Name != "office" || p.ID != pc.ID() {
		t.Fatalf("rename by whole name: %+v, %v", p, err)
	}
	if got, _ := d.store.Get(pc); got.Name != "office" {
		t.Fatalf("stored name %q after rename", got.Name)
	}
	// "desk" is now one device's prefix.
	if p, err := cl.Rename(ctx, "desk", "study"); err != nil || p.ID != mac.ID() {
		t.Fatalf("rename by prefix: %+v, %v", p, err)
	}
	// By ID, lower case and without dashes.
	id := strings.ToLower(strings.ReplaceAll(phone.ID(), "-", ""))
	if p, err := cl.Unpair(ctx, id); err != nil || p.ID != phone.ID() {
		t.Fatalf("unpair by ID %s: %+v, %v", id, p, err)
	}
	if _, ok := d.store.Get(phone); ok {
		t.Fatal("unpaired device still stored")
	}
	// A bad new name is refused before any lookup.
	if _, err := cl.Rename(ctx, "study", "bad\x00name"); err == nil {
		t.Fatal("a name with a control character was taken")
	}
}
