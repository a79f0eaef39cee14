package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
)

// noLAN keeps the beacon fallback off the network in loopback tests.
var noLAN = beacon.Config{Interfaces: func() ([]net.Interface, error) { return nil, nil }}

type side struct {
	id     *Identity
	store  *Store
	window *Window
	srv    *Server
	port   uint16
}

func newSide(t *testing.T, serve bool) *side {
	t.Helper()
	dir := t.TempDir()
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &side{id: id, store: st, window: &Window{}}
	if serve {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = uint16(ln.Addr().(*net.TCPAddr).Port)
		s.srv = &Server{Identity: id, Window: s.window, Store: st, Name: func() string { return "server" }}
		s.srv.Serve(ln)
		t.Cleanup(func() { s.srv.Close(context.Background()) })
	}
	return s
}

func (s *side) payload() *Payload {
	info := s.window.Open()
	return &Payload{Host: netip.MustParseAddr("127.0.0.1"), Port: s.port, Fingerprint: s.id.Fingerprint, Secret: info.Secret, Name: "server"}
}

func (c *side) join(p *Payload, code string) (*JoinResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Join(ctx, p, JoinOptions{Identity: c.id, Store: c.store, Name: "client", Code: code, Beacon: noLAN})
}

func TestJoinPairsBothSides(t *testing.T) {
	a, b := newSide(t, true), newSide(t, false)
	res, err := b.join(a.payload(), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Peer.ID != a.id.ID() || res.Peer.Name != "server" {
		t.Fatalf("joined %+v", res.Peer)
	}
	if p, ok := a.store.Get(b.id.Fingerprint); !ok || p.Name != "client" || p.Kind != KindDevice {
		t.Fatalf("server store: %+v %v", p, ok)
	}
	if p, ok := b.store.Get(a.id.Fingerprint); !ok || p.Port != a.port {
		t.Fatalf("client store: %+v %v", p, ok)
	}
	if a.window.Info().Open {
		t.Fatal("window still open after a success")
	}
}

func TestJoinFailures(t *testing.T) {
	a, b := newSide(t, true), newSide(t, false)
	p := a.payload()

	wrong := *p
	wrong.Secret = bytes.Repeat([]byte{1}, SecretLen)
	if _, err := b.join(&wrong, ""); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("wrong secret: %v", err)
	}

	// A different daemon at the link's address: refused before any secret
	// is sent.
	impostor := newSide(t, true)
	impostor.window.Open()
	fake := *p
	fake.Port = impostor.port
	if _, err := b.join(&fake, ""); !errors.Is(err, ErrImpostor) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("impostor: %v", err)
	}

	// Nothing listens: unreachable, naming what was tried.
	gone := *p
	gone.Port = 1
	if _, err := b.join(&gone, ""); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable: %v", err)
	}

	// A replayed proof (computed for another TLS session) is a wrong secret.
	if code := replay(t, a, b.id, p.Secret); code != http.StatusUnauthorized {
		t.Fatalf("replayed proof answered %d", code)
	}

	if len(a.store.List()) != 0 || len(b.store.List()) != 0 {
		t.Fatal("a failed attempt changed a store")
	}

	// Expired / closed window.
	a.window.Close()
	if _, err := b.join(p, ""); !errors.Is(err, ErrWindowClosed) {
		t.Fatalf("closed window: %v", err)
	}
}

// replay sends a proof bound to a made-up exporter value, as one captured
// from another session would be.
func replay(t *testing.T, a *side, id *Identity, secret []byte) int {
	c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", portStr(a.port)), pinnedConfig(id, a.id.Fingerprint))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body, _ := json.Marshal(PairRequest{Proof: mac(secret, clientLabel, make([]byte, 32)), Name: "x", Kind: KindDevice})
	tr := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
	resp, err := (&http.Client{Transport: tr}).Post("https://pair"+PathPair, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestWindowClosesAtTheCap: MaxFailures wrong attempts from any number of
// sources close the window (no new secret), and it says why until a new
// one opens; each source's own limit outlives the window.
func TestWindowClosesAtTheCap(t *testing.T) {
	w := &Window{}
	w.OpenForLink()
	var changes []WindowInfo
	w.OnChange = func(i WindowInfo) { changes = append(changes, i) }
	var err error
	for i := range MaxFailures {
		// Many sources, so the per-source limit does not trip first.
		src := netip.AddrFrom4([4]byte{10, 0, byte(i / 4), byte(i)})
		if i%2 == 0 {
			err = w.CheckProof(src, func([]byte) bool { return false })
		} else {
			err = w.CheckCode(src, "000000")
		}
		if i < MaxFailures-1 && !errors.Is(err, ErrWrongSecret) && !errors.Is(err, ErrWrongCode) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("attempt %d: %v, want ErrTooManyAttempts", MaxFailures, err)
	}
	info := w.Info()
	if info.Open || info.Closed != ErrTooManyAttempts.Error() || len(changes) != 1 || changes[0].Open {
		t.Fatalf("after %d failures: %+v, changes %+v", MaxFailures, info, changes)
	}
	// Every later attempt, right or wrong, is refused and says why.
	err = w.CheckProof(netip.MustParseAddr("10.9.0.1"), func([]byte) bool { return true })
	if !errors.Is(err, ErrWindowClosed) || !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("after the cap: %v", err)
	}
	if r, _ := Reason(err); r != "too_many_attempts" {
		t.Fatalf("wire reason %q", r)
	}
	// A new window starts afresh, but a source that used its failures is
	// still held back.
	src := netip.MustParseAddr("10.9.9.9")
	w2 := &Window{}
	w2.Open()
	for range sourceBurst {
		w2.CheckProof(src, func([]byte) bool { return false })
	}
	w2.Close()
	w2.Open()
	if err := w2.CheckProof(src, func([]byte) bool { return true }); !errors.Is(err, ErrTooMany) {
		t.Fatalf("per-source limit after a new window: %v", err)
	}
	if w2.Info().Closed != "" {
		t.Fatal("a new window still reports the old close")
	}
}

// TestCodeOnlyForLinks: a window shown as a QR code takes no code at all;
// asking for a link makes the open window take it.
func TestCodeOnlyForLinks(t *testing.T) {
	w := &Window{}
	info := w.Open()
	code, _ := Code(info.Secret, time.Now())
	src := netip.MustParseAddr("10.0.0.1")
	for range 3 * MaxFailures {
		if err := w.CheckCode(src, code); !errors.Is(err, ErrNoCode) {
			t.Fatalf("code in a QR window: %v", err)
		}
	}
	if w.Info().Failures != 0 {
		t.Fatal("refused codes counted as failures")
	}
	if again := w.OpenForLink(); !again.Code || !bytes.Equal(again.Secret, info.Secret) {
		t.Fatalf("OpenForLink on the open window: %+v", again)
	}
	if err := w.CheckCode(src, code); err != nil {
		t.Fatalf("code in a link window: %v", err)
	}
}

func TestCodeOnceAndCurrentStepsOnly(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	w := &Window{Now: func() time.Time { return now }}
	secret := w.OpenForLink().Secret
	src := netip.MustParseAddr("10.0.0.1")
	code, _ := Code(secret, now)
	if err := w.CheckCode(src, code); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckCode(src, code); !errors.Is(err, ErrCodeReused) {
		t.Fatalf("replayed code: %v", err)
	}
	old, _ := Code(secret, now.Add(-2*time.Minute))
	if err := w.CheckCode(netip.MustParseAddr("10.0.0.2"), old); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("old code: %v", err)
	}
	now = now.Add(30 * time.Second)
	prev, _ := Code(secret, now.Add(-30*time.Second))
	if err := w.CheckCode(netip.MustParseAddr("10.0.0.3"), prev); !errors.Is(err, ErrCodeReused) {
		t.Fatalf("previous step already used: %v", err)
	}
}

func TestJoinWithCode(t *testing.T) {
	a, b := newSide(t, true), newSide(t, false)
	p := a.payload()
	code, _ := Code(p.Secret, time.Now())
	p.Secret = nil
	if _, err := b.join(p, code); !errors.Is(err, ErrNoCode) {
		t.Fatalf("code for a window shown as a QR code: %v", err)
	}
	a.window.OpenForLink()
	if _, err := b.join(p, ""); !errors.Is(err, ErrNeedCode) {
		t.Fatalf("link without code: %v", err)
	}
	if _, err := b.join(p, "000000"); !errors.Is(err, ErrWrongCode) && code != "000000" {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := b.join(p, code); err != nil {
		t.Fatalf("right code: %v", err)
	}
	if _, ok := a.store.Get(b.id.Fingerprint); !ok {
		t.Fatal("not stored")
	}
}

func FuzzPairRequest(f *testing.F) {
	good, _ := json.Marshal(PairRequest{Proof: make([]byte, 32), Name: "n", Kind: KindDevice})
	f.Add(good)
	f.Add([]byte(`{"code":"123456","name":"x","kind":"browser"}`))
	f.Add([]byte(`{"code":"1","proof":"AA=="}`))
	f.Add([]byte(`{"code":"123456","name":"x","kind":"device","port":41234}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodePairRequest(b)
		if err == nil && (r.Name == "" || (r.Proof == nil) == (r.Code == "")) {
			t.Fatalf("accepted %q", b)
		}
	})
}

func FuzzProbeRequest(f *testing.F) {
	f.Add([]byte(`{"targets":[{"addr":"10.1.0.1","nonce":"0123456789abcdef0123456789abcdef"}]}`))
	f.Add([]byte(`{"targets":[{"addr":"fe80::1%eth0","nonce":"0123456789abcdef0123456789abcdef"}]}`))
	f.Add([]byte(`{"targets":[]}`))
	f.Add([]byte(`{"targets":[{"addr":"x","nonce":"y"}],"more":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeProbeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		if len(r.Targets) == 0 || len(r.Targets) > discovery.MaxProbeTargets {
			t.Fatalf("accepted %d targets", len(r.Targets))
		}
		for _, x := range r.Targets {
			if !x.Addr.IsValid() || len(x.Nonce) != 32 {
				t.Fatalf("accepted %+v", x)
			}
		}
	})
}

func TestListenerLimits(t *testing.T) {
	old := firstByteTimeout
	firstByteTimeout = 200 * time.Millisecond
	defer func() { firstByteTimeout = old }()
	a := newSide(t, true)
	addr := net.JoinHostPort("127.0.0.1", portStr(a.port))

	// A silent connection is dropped.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent connection not dropped: %v", err)
	}

	// An oversized body is refused, and nothing is paired.
	a.window.Open()
	tc, err := tls.Dial("tcp", addr, pinnedConfig(newSide(t, false).id, a.id.Fingerprint))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	big := bytes.Repeat([]byte("x"), 2*MaxRequestBody)
	tr := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return tc, nil }}
	resp, err := (&http.Client{Transport: tr}).Post("https://pair"+PathPair, "application/json", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(a.store.List()) != 0 {
		t.Fatalf("oversized body: %d, store %v", resp.StatusCode, a.store.List())
	}

	// Plain HTTP on the same port reaches the plain handler.
	resp, err = http.Get("http://" + addr + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("plain HTTP: %d", resp.StatusCode)
	}
}

// TestWindowExpiry: the window says when its lifetime ends (the QR code
// goes away, the beacon stops announcing it), and Stop ends it quietly.
func TestWindowExpiry(t *testing.T) {
	changes := make(chan WindowInfo, 4)
	w := &Window{Lifetime: 50 * time.Millisecond, OnChange: func(i WindowInfo) { changes <- i }}
	if !w.Open().Open || !(<-changes).Open {
		t.Fatal("Open did not open")
	}
	select {
	case i := <-changes:
		if i.Open || w.Info().Open {
			t.Fatalf("at the end of the lifetime: %+v", i)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no change at the end of the lifetime")
	}
	w.SetLifetime(time.Hour)
	w.Open()
	<-changes
	w.Stop()
	if w.Info().Open || w.Open().Open {
		t.Fatal("the window opens after Stop")
	}
	select {
	case i := <-changes:
		t.Fatalf("Stop told OnChange %+v", i)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestZones: link-local addresses a peer reports carry the peer's own
// interface names (or none); we store them with ours, the one we reached
// the peer over, and never dial one without a zone.
func TestZones(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1%host0")
	v4 := netip.MustParseAddr("10.1.0.2")
	got := OurZones([]netip.Addr{v4, ll}, netip.MustParseAddr("fe80::2%eth3"))
	if len(got) != 2 || got[0] != v4 || got[1].Zone() != "eth3" {
		t.Fatalf("zoned %v", got)
	}
	// Over IPv4 to an address on none of our links: the link is unknown,
	// so the link-local address is dropped rather than kept unusable.
	if got := OurZones([]netip.Addr{v4, ll}, netip.MustParseAddr("203.0.113.9")); len(got) != 1 || got[0] != v4 {
		t.Fatalf("zoned %v", got)
	}
	if err := dialable(netip.MustParseAddr("fe80::1")); !errors.Is(err, ErrNoZone) {
		t.Fatalf("dialable without zone: %v", err)
	}
	if err := dialable(ll); err != nil {
		t.Fatal(err)
	}
}
