package session

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
)

func newSessions(t *testing.T) (*Sessions, *pairing.Window) {
	t.Helper()
	dir := t.TempDir()
	id, err := pairing.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pairing.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := &pairing.Window{}
	s := New(Config{Identity: id, Store: st, Window: w, Inbox: &inbox.Inbox{Dir: t.TempDir()}, Name: func() string { return "d" }})
	return s, w
}

func sdpWith(fp ident.Fingerprint) string {
	return "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 " + fp.String() + "\r\n"
}

// TestServeOfferRefusals: what a stranger's browser can send before it is
// paired, each refused with its reason and no session set up; offers
// from one source are rate limited.
func TestServeOfferRefusals(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, _ := newSessions(t)
	defer s.Close()
	offer := func(src, body string) (int, string) {
		r := httptest.NewRequest("POST", "/p/offer", strings.NewReader(body))
		r.RemoteAddr = src + ":5000"
		w := httptest.NewRecorder()
		s.PageAPI().ServeHTTP(w, r)
		var er pairing.ErrorResponse
		json.Unmarshal(w.Body.Bytes(), &er)
		return w.Code, er.Reason
	}
	stranger, _ := json.Marshal(pairing.ConnectMessage{SDP: sdpWith(ident.Of([]byte("stranger")))})
	for _, c := range []struct {
		body   string
		status int
		reason string
	}{
		{"{", http.StatusBadRequest, "bad_request"},
		{`{"sdp": "v=0\r\n"}`, http.StatusBadRequest, "bad_request"},
		{string(stranger), http.StatusForbidden, "window_closed"},
	} {
		if code, reason := offer("10.0.0.1", c.body); code != c.status || reason != c.reason {
			t.Errorf("%.30q: %d %s, want %d %s", c.body, code, reason, c.status, c.reason)
		}
	}
	for range offersPerMinute {
		offer("10.0.0.2", "{")
	}
	if code, reason := offer("10.0.0.2", "{"); code != http.StatusTooManyRequests || reason != "too_many" {
		t.Fatalf("offer past the limit: %d %s", code, reason)
	}
	if code, _ := offer("10.0.0.3", "{"); code != http.StatusBadRequest {
		t.Fatalf("another source is limited by the first one: %d", code)
	}
	if n := len(s.Connections()); n != 0 {
		t.Fatalf("%d sessions set up for refused offers", n)
	}
}

// TestConnectRefusesUnpaired: a device not in the store gets no session.
func TestConnectRefusesUnpaired(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, _ := newSessions(t)
	fp := ident.Of([]byte("stranger"))
	if _, err := s.Connect(context.Background(), sdpWith(fp), fp, netip.MustParseAddr("10.0.0.1")); err == nil || !strings.Contains(err.Error(), "not a paired device") {
		t.Fatalf("Connect from an unpaired device: %v", err)
	}
	if n := len(s.Connections()); n != 0 {
		t.Fatalf("%d sessions", n)
	}
	s.Close()
	s.Close()
}

// TestSendChecksFirst: a bad request is refused before any connection.
func TestSendChecksFirst(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, _ := newSessions(t)
	defer s.Close()
	p := pairing.PairedPeer{Fingerprint: ident.Of([]byte("b")), Name: "b", Kind: pairing.KindDevice}
	browser := p
	browser.Kind = pairing.KindBrowser
	for _, c := range []struct {
		p          pairing.PairedPeer
		kind, name string
		body       string
		path       string
		want       string
	}{
		{p, "text", "", strings.Repeat("x", maxText+1), "", "at most 32 KiB"},
		{p, "file", "../x", "", "", "file name"},
		{browser, "file", "x", "", "", "the phone's page is not open; open the bookmark or scan again"},
		{p, "video", "", "", "", "unknown kind"},
		{browser, "text", "", "hi", "", "the phone's page is not open"},
		{p, "text", "", "hi", "", "no known address"},
		{p, "file", "x", "data", "carrier-pigeon", "unknown path"},
		{p, "file", "x", "data", PathTLS, "no direct TLS connection"},
		{p, "file", "x", "data", PathAuto, "no known address"}, // then WebRTC, which has none either
	} {
		_, err := s.Send(context.Background(), c.p, c.kind, c.name, int64(len(c.body)), strings.NewReader(c.body), c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("send %s %q to %s: %v, want %q", c.kind, c.name, c.p.Kind, err, c.want)
		}
	}
}
