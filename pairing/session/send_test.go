package session

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
)

// node is one daemon's sessions behind a real pairing listener on
// loopback: what another node's Send reaches.
type node struct {
	s     *Sessions
	id    *pairing.Identity
	store *pairing.Store
	inbox *inbox.Inbox
	srv   *pairing.Server
	port  uint16
}

func newNode(t *testing.T, name string, w config.WebRTCSettings) *node {
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
	in := &inbox.Inbox{Dir: t.TempDir(), MaxFile: 1 << 20}
	n := &node{id: id, store: st, inbox: in}
	n.s = New(Config{Identity: id, Store: st, Window: &pairing.Window{}, Inbox: in, WebRTC: w, Name: func() string { return name }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.srv = &pairing.Server{Identity: id, Window: &pairing.Window{}, Store: st, Name: func() string { return name }, TLS: n.s.Handler()}
	n.srv.Serve(ln)
	n.port = uint16(n.srv.Port())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.srv.Close(ctx)
		n.s.Close()
	})
	return n
}

// pairWith stores each node as the other's paired device, at its
// listener's loopback address.
func pairWith(t *testing.T, a, b *node) (aSeesB pairing.PairedPeer) {
	t.Helper()
	peer := func(n *node, name string) pairing.PairedPeer {
		return pairing.PairedPeer{Fingerprint: n.id.Fingerprint, Name: name, Kind: pairing.KindDevice,
			Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: n.port}
	}
	if err := a.store.Put(peer(b, "b")); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Put(peer(a, "a")); err != nil {
		t.Fatal(err)
	}
	p, _ := a.store.Get(b.id.Fingerprint)
	return p
}

func settings(transfer string, idle time.Duration) config.WebRTCSettings {
	return config.WebRTCSettings{Transfer: transfer, ConnectionIdle: idle}
}

// TestSendPathChoice: a file goes over direct TLS unless the path or the
// transfer setting says webrtc; a text always goes over WebRTC; what
// arrives is what was sent, in the receiver's inbox.
func TestSendPathChoice(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, c := range []struct {
		transfer, path, kind, want string
	}{
		{"auto", "", "file", PathTLS},
		{"auto", PathAuto, "file", PathTLS},
		{"auto", PathWebRTC, "file", PathWebRTC},
		{"webrtc", "", "file", PathWebRTC},
		{"tls", "", "file", PathTLS},
		{"webrtc", PathTLS, "file", PathTLS},
		{"auto", "", "text", PathWebRTC},
	} {
		t.Run(c.transfer+"-"+c.path+"-"+c.kind, func(t *testing.T) {
			a := newNode(t, "a", settings(c.transfer, time.Minute))
			b := newNode(t, "b", settings("auto", time.Minute))
			p := pairWith(t, a, b)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			body := "hello from " + c.kind
			res, err := a.s.Send(ctx, p, c.kind, "note.txt", int64(len(body)), strings.NewReader(body), c.path)
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != c.want {
				t.Fatalf("path %s, want %s", res.Path, c.want)
			}
			if c.kind == "file" {
				waitFor(t, func() bool {
					got, err := os.ReadFile(filepath.Join(b.inbox.Dir, "note.txt"))
					return err == nil && string(got) == body
				}, "the file in b's inbox")
			}
		})
	}
}

// TestSendPoolReuse: the WebRTC connection of one send serves the next;
// new WebRTC settings close it; past connection-idle it is gone.
func TestSendPoolReuse(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the nodes close
	a := newNode(t, "a", settings("webrtc", time.Minute))
	b := newNode(t, "b", settings("auto", time.Minute))
	p := pairWith(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	send := func() *SendResult {
		t.Helper()
		res, err := a.s.Send(ctx, p, "text", "", 2, strings.NewReader("hi"), "")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if send().Reused {
		t.Fatal("the first send reused a connection")
	}
	if !send().Reused {
		t.Fatal("the second send did not reuse the first one's connection")
	}
	a.s.SetWebRTC(settings("webrtc", time.Minute)) // the same: kept
	if !send().Reused {
		t.Fatal("unchanged settings closed the kept connection")
	}
	a.s.SetWebRTC(settings("webrtc", 300*time.Millisecond)) // idle changes nothing kept…
	if !send().Reused {
		t.Fatal("a new idle time closed the kept connection")
	}
	// …but the connection is now kept for 300 ms only.
	waitFor(t, func() bool {
		a.s.pool.mu.Lock()
		defer a.s.pool.mu.Unlock()
		return len(a.s.pool.kept) == 0
	}, "the idle connection to expire")
	if send().Reused {
		t.Fatal("a send reused a connection past its idle time")
	}
	a.s.SetWebRTC(config.WebRTCSettings{Transfer: "webrtc", ConnectionIdle: time.Minute, STUN: []string{"stun:192.0.2.1:3478"}})
	a.s.SetWebRTC(settings("webrtc", time.Minute)) // and back: no STUN
	if send().Reused {
		t.Fatal("a send reused a connection made with old ICE servers")
	}
}

// TestSendToPage: a paired browser is reached through its open page only:
// no page, no send, whatever the path and the transfer setting.
func TestSendToPage(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the nodes close
	a := newNode(t, "a", settings("tls", time.Minute))
	b := newNode(t, "b", settings("auto", time.Minute))
	p := pairWith(t, a, b)
	p.Kind = pairing.KindBrowser // a daemon at the address, but no page
	for _, path := range []string{"", PathTLS, PathWebRTC} {
		_, err := a.s.Send(context.Background(), p, "file", "x", 1, strings.NewReader("x"), path)
		if !errors.Is(err, ErrPageClosed) {
			t.Fatalf("path %q: %v, want ErrPageClosed", path, err)
		}
	}
	if n := len(a.s.Connections()); n != 0 {
		t.Fatalf("%d connections for a page that is closed", n)
	}
}

// TestPageMessagesBytes: the typed answers to the page are the bytes the
// page always got (encoding/json sorted the keys of the maps they were).
func TestPageMessagesBytes(t *testing.T) {
	before := []pageDevice{{ID: "ABCD", Name: "phone"}}
	empty := []pageDevice{}
	for _, c := range []struct {
		typed any
		was   map[string]any
	}{
		{pageErr("bad_request", "pair first"), map[string]any{"t": "error", "reason": "bad_request", "error": "pair first"}},
		{pagePaired{Again: true, MaxFile: 42, Name: "d", T: "paired"}, map[string]any{"t": "paired", "name": "d", "max_file": int64(42), "again": true}},
		{pagePaired{Before: &before, MaxFile: 42, Name: "d", T: "paired"}, map[string]any{"t": "paired", "name": "d", "max_file": int64(42),
			"before": []map[string]string{{"id": "ABCD", "name": "phone"}}}},
		{pagePaired{Before: &empty, MaxFile: 42, Name: "d", T: "paired"}, map[string]any{"t": "paired", "name": "d", "max_file": int64(42),
			"before": []map[string]string{}}},
		{pageReplaced{Name: "phone", T: "replaced"}, map[string]any{"t": "replaced", "name": "phone"}},
		{pageNotice{T: "renewed"}, map[string]any{"t": "renewed"}},
		{pageNotice{T: "unpaired"}, map[string]any{"t": "unpaired"}},
	} {
		got, _ := json.Marshal(c.typed)
		want, _ := json.Marshal(c.was)
		if string(got) != string(want) {
			t.Errorf("%s, want %s", got, want)
		}
	}
	for _, bad := range []string{"{", strings.Repeat(" ", pairing.MaxRequestBody) + "{}", `{"t": 1}`} {
		if _, ok := decodePageRequest([]byte(bad)); ok {
			t.Errorf("%.20q decoded", bad)
		}
	}
	if m, ok := decodePageRequest([]byte(`{"t":"what","x":1}`)); !ok || m.T != "what" {
		t.Errorf("an unknown type: %+v %v (it is answered by the transfer protocol)", m, ok)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
