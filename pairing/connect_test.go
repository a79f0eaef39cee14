package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/internal/lan"
	"github.com/lanpairing/pairing/pairing/rtc"
)

func TestConnectRefusalsInNamespace(t *testing.T) {
	if lan.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lan.RunInHost(t, "TestHelperConnectRefusals"))
}

// TestHelperConnectRefusals: offers that must be refused before anything
// is set up, and one that is accepted.
func TestHelperConnectRefusals(t *testing.T) {
	if !lan.InHelper() {
		t.Skip("runs inside a simulated host; see TestConnectRefusalsInNamespace")
	}
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	var logs lan.SyncBuffer
	d, err := Start(Config{StateDir: filepath.Join(dir, "d"), Socket: filepath.Join(dir, "d.sock"), Name: "d",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	<-d.Acquired()
	newID := func(name string) *Identity {
		id, err := LoadIdentity(t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return id
	}
	paired, stranger := newID("paired"), newID("stranger")
	if err := d.store.Put(PairedPeer{Fingerprint: paired.Fingerprint, Name: "p", Kind: KindDevice}); err != nil {
		t.Fatal(err)
	}
	offer := func(id *Identity) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, sdp, err := rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(id.Key, id.Cert)}).Offer(ctx, d.id.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		return sdp
	}
	post := func(client *Identity, sdp string) (int, string) {
		tr := &http.Transport{DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dl := tls.Dialer{Config: pinnedConfig(client, d.id.Fingerprint)}
			return dl.DialContext(ctx, "tcp", net.JoinHostPort("10.9.0.1", portStr(uint16(d.Port()))))
		}}
		defer tr.CloseIdleConnections()
		body, _ := json.Marshal(ConnectMessage{SDP: sdp})
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post("https://d"+PathConnect, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var er errorResponse
		json.NewDecoder(resp.Body).Decode(&er)
		return resp.StatusCode, er.Error
	}
	pOffer, uOffer := offer(paired), offer(stranger)
	mixed := strings.Replace(pOffer, "m=application", "a=fingerprint:sha-256 "+stranger.Fingerprint.String()+"\r\nm=application", 1)
	for _, c := range []struct {
		name   string
		client *Identity
		sdp    string
		want   string
	}{
		{"unpaired device", stranger, uOffer, "not a paired device"},
		{"someone else's fingerprint", paired, uOffer, "not the certificate the request came with"},
		{"session and media fingerprints differ", paired, mixed, "different fingerprints"},
		{"TLS certificate differs from the SDP", stranger, pOffer, "not the certificate the request came with"},
	} {
		if code, msg := post(c.client, c.sdp); code != http.StatusForbidden || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want 403 with %q", c.name, code, msg, c.want)
		}
	}
	if n := len(d.connections()); n != 0 {
		t.Fatalf("%d sessions were set up for refused offers", n)
	}
	if got := strings.Count(logs.String(), "webrtc: connection refused"); got != 4 {
		t.Fatalf("%d refusals logged, want 4:\n%s", got, logs.String())
	}
	// The genuine offer is answered.
	if code, msg := post(paired, pOffer); code != http.StatusOK {
		t.Fatalf("paired device: %d %s", code, msg)
	}
	if n := len(d.connections()); n != 1 {
		t.Fatalf("%d sessions after the accepted offer", n)
	}
	d.Close()
}
