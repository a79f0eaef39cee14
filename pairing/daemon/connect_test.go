package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

func TestConnectRefusalsInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperConnectRefusals"))
}

// TestHelperConnectRefusals: offers that must be refused before anything
// is set up, and one that is accepted.
func TestHelperConnectRefusals(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestConnectRefusalsInNamespace")
	}
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	var logs lantest.SyncBuffer
	d, err := Start(Config{StateDir: filepath.Join(dir, "d"), Socket: filepath.Join(dir, "d.sock"), Settings: config.Settings{Name: "d"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	<-d.Acquired()
	newID := func(name string) *pairing.Identity {
		id, err := pairing.LoadIdentity(t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return id
	}
	paired, stranger := newID("paired"), newID("stranger")
	if err := d.store.Put(pairing.PairedPeer{Fingerprint: paired.Fingerprint, Name: "p", Kind: pairing.KindDevice}); err != nil {
		t.Fatal(err)
	}
	offer := func(id *pairing.Identity) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, sdp, err := rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(id.Key, id.Cert)}).Offer(ctx, d.id.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		return sdp
	}
	// post signals sdp as client, the way a paired daemon does, and
	// returns the refusal ("" when answered).
	post := func(client *pairing.Identity, sdp string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		to := netip.AddrPortFrom(netip.MustParseAddr("10.9.0.1"), uint16(d.Port()))
		_, err := pairing.Signal(ctx, client, d.id.Fingerprint, []netip.AddrPort{to}, sdp)
		if err == nil {
			return ""
		}
		if !strings.Contains(err.Error(), "the device refused the connection") {
			t.Fatalf("not a refusal: %v", err)
		}
		return err.Error()
	}
	pOffer, uOffer := offer(paired), offer(stranger)
	mixed := strings.Replace(pOffer, "m=application", "a=fingerprint:sha-256 "+stranger.Fingerprint.String()+"\r\nm=application", 1)
	for _, c := range []struct {
		name   string
		client *pairing.Identity
		sdp    string
		want   string
	}{
		{"unpaired device", stranger, uOffer, "not a paired device"},
		{"someone else's fingerprint", paired, uOffer, "not the certificate the request came with"},
		{"session and media fingerprints differ", paired, mixed, "different fingerprints"},
		{"TLS certificate differs from the SDP", stranger, pOffer, "not the certificate the request came with"},
	} {
		if msg := post(c.client, c.sdp); !strings.Contains(msg, c.want) {
			t.Errorf("%s: %q, want a refusal with %q", c.name, msg, c.want)
		}
	}
	if n := len(d.sess.Connections()); n != 0 {
		t.Fatalf("%d sessions were set up for refused offers", n)
	}
	if got := strings.Count(logs.String(), "webrtc: connection refused"); got != 4 {
		t.Fatalf("%d refusals logged, want 4:\n%s", got, logs.String())
	}
	// The genuine offer is answered.
	if msg := post(paired, pOffer); msg != "" {
		t.Fatalf("paired device: %s", msg)
	}
	if n := len(d.sess.Connections()); n != 1 {
		t.Fatalf("%d sessions after the accepted offer", n)
	}
	d.Close()
}
