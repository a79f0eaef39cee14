package pairing

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestSelfJoinRefused: a device never pairs with itself. Join refuses its
// own link before it dials; the server refuses a pairing request whose
// client certificate is its own before it looks at the proof. The window
// stays open, and another device pairs with it right after.
func TestSelfJoinRefused(t *testing.T) {
	a, b := newSide(t, true), newSide(t, false)
	p := a.payload()
	if _, err := a.join(p, ""); !errors.Is(err, ErrSelf) {
		t.Fatalf("join of the own link: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, errs := dialFirst(ctx, []netip.AddrPort{netip.AddrPortFrom(p.Host, p.Port)}, a.id, a.id.Fingerprint)
	if conn == nil {
		t.Fatal(errs)
	}
	defer conn.Close()
	if _, err := pairOver(ctx, conn, p, JoinOptions{Identity: a.id, Name: "me"}); !errors.Is(err, ErrSelf) {
		t.Fatalf("pairing request with the own certificate: %v", err)
	}
	if len(a.store.List()) != 0 || !a.window.Info().Open {
		t.Fatalf("after the self-join: store %+v, window %+v", a.store.List(), a.window.Info())
	}
	if _, err := b.join(p, ""); err != nil {
		t.Fatalf("another device right after: %v", err)
	}
}

// TestJoinNeutralisesDeviceName: the device joined says its name after
// it has paired; a name with control or format characters is stored
// escaped, never as it came.
func TestJoinNeutralisesDeviceName(t *testing.T) {
	a, b := newSide(t, true), newSide(t, false)
	a.srv.Name = func() string { return "\x1b]0;pwned\x07\u202eexe" }
	res, err := b.join(a.payload(), "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := b.store.Get(a.id.Fingerprint)
	if want := `\x1b]0;pwned\x07\u202eexe`; res.Peer.Name != want || p.Name != want {
		t.Fatalf("stored %q, answered %q", p.Name, res.Peer.Name)
	}
}
