package pairing

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
)

// TestAccepter: the one place a pairing is accepted, for both paths: the
// self check spends nothing, a wrong proof or code counts against the
// window, a right one stores the device and closes the window.
func TestAccepter(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	self := ident.Of([]byte("self"))
	w := &Window{}
	defer w.Stop()
	a := &Accepter{Self: self, Window: w, Store: st}
	src := netip.MustParseAddr("192.0.2.7")
	attempt := func(fp ident.Fingerprint, code string, right bool) Attempt {
		return Attempt{Peer: PairedPeer{Fingerprint: fp, Name: "p", Kind: KindBrowser, Addresses: []netip.Addr{src}}, Code: code,
			Proof: func([]byte) bool { return right }}
	}
	peer := ident.Of([]byte("peer"))
	if _, err := a.Accept(attempt(peer, "", true)); !errors.Is(err, ErrWindowClosed) {
		t.Fatalf("no window: %v", err)
	}
	w.Open()
	if _, err := a.Accept(attempt(self, "", true)); !errors.Is(err, ErrSelf) {
		t.Fatalf("self: %v", err)
	}
	if f := w.Info().Failures; f != 0 {
		t.Fatalf("the self check counted %d failures", f)
	}
	if _, err := a.Accept(attempt(peer, "", false)); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("wrong proof: %v", err)
	}
	if _, err := a.Accept(attempt(peer, "123456", true)); !errors.Is(err, ErrNoCode) {
		t.Fatalf("a code in a QR window: %v", err)
	}
	if f := w.Info().Failures; f != 1 {
		t.Fatalf("%d failures, want 1", f)
	}
	if _, ok := st.Get(peer); ok {
		t.Fatal("stored after failures")
	}
	before := time.Now().UTC().Add(-time.Second)
	p, err := a.Accept(attempt(peer, "", true))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := st.Get(peer); !ok || got.Kind != KindBrowser || p.PairedAt.Before(before) {
		t.Fatalf("stored %+v %v", got, ok)
	}
	if info := w.Info(); info.Open || info.Succeeded.IsZero() {
		t.Fatalf("window after a pairing: %+v", info)
	}
	// A code, in a window opened for a link.
	info := w.OpenForLink()
	code, _ := Code(info.Secret, time.Now())
	other := ident.Of([]byte("other"))
	if _, err := a.Accept(attempt(other, code, false)); err != nil {
		t.Fatalf("right code: %v", err)
	}
	if _, ok := st.Get(other); !ok {
		t.Fatal("the code's device was not stored")
	}
}
