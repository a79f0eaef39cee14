package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lanpairing/pairing/pairing"
)

// guarded is the guard in front of the page and a counting offer handler,
// on a real loopback listener; own addresses are 10.1.0.1 and fe80::1.
func guarded(t *testing.T) (srv *httptest.Server, port int, offers *atomic.Int32) {
	offers = &atomic.Int32{}
	mux := http.NewServeMux()
	mux.Handle("GET /p", Handler())
	mux.Handle("GET /p/", Handler())
	mux.HandleFunc("POST /p/offer", func(w http.ResponseWriter, r *http.Request) { offers.Add(1); w.Write([]byte(`{"sdp":"answer"}`)) })
	mux.HandleFunc("GET /confirm", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	g := &Guard{Names: []string{"pairing-abcd1234.local."}, AnyHost: []string{"/confirm"},
		IsOwn: func(a netip.Addr) bool {
			return a == netip.MustParseAddr("10.1.0.1") || a == netip.MustParseAddr("fe80::1")
		}}
	srv = httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	port = srv.Listener.Addr().(*net.TCPAddr).Port
	g.Port = port
	srv.Config.Handler = g.Wrap(mux)
	return srv, port, offers
}

// do sends a raw request (any Host, as an attacker's tool would) and
// reads the answer.
func do(t *testing.T, srv *httptest.Server, method, path, host string, hdr map[string]string) (int, pairing.ErrorResponse, http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := ""
	if method == "POST" {
		body = `{"sdp":"offer"}`
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, host, len(body))
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var er pairing.ErrorResponse
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &er)
	return resp.StatusCode, er, resp.Header
}

func TestGuardHost(t *testing.T) {
	srv, port, offers := guarded(t)
	p := ":" + strconv.Itoa(port)
	asJSON := map[string]string{"Content-Type": "application/json"}
	for _, host := range []string{"10.1.0.1" + p, "10.1.0.1", "127.0.0.1" + p, "[::1]" + p, "[fe80::1]" + p, "[fe80::1%25eth0]" + p,
		"[FE80::1%25eth0]", "pairing-abcd1234.local" + p, "PAIRING-ABCD1234.LOCAL" + p, "pairing-abcd1234.local." + p} {
		for _, path := range []string{"/p", "/p/app.js"} {
			if code, er, _ := do(t, srv, "GET", path, host, nil); code != 200 {
				t.Errorf("GET %s Host %s: %d %+v", path, host, code, er)
			}
		}
		if code, er, _ := do(t, srv, "POST", "/p/offer", host, asJSON); code != 200 {
			t.Errorf("POST Host %s: %d %+v", host, code, er)
		}
	}
	n := offers.Load()
	for _, host := range []string{"attacker.example" + p, "ATTACKER.EXAMPLE" + p, "attacker.example." + p, "attacker.example", "10.1.0.2" + p,
		"10.1.0.1:1", "10.1.0.1:0" + strconv.Itoa(port), "10.1.0.1:+1", "[2001:db8::1]" + p, "[fe80::2%25eth0]" + p, "fe80::1", "[10.1.0.1]" + p,
		"[fe80::1" + p, "[fe80::1]x", "10.1.0.1" + p + p, "pairing-abcd1234.local.evil" + p, "xpairing-abcd1234.local" + p, "" + p,
		"0x0a.1.0.1" + p, "010.1.0.1" + p} {
		for _, path := range []string{"/p", "/p/app.js"} {
			if code, er, _ := do(t, srv, "GET", path, host, nil); code != http.StatusMisdirectedRequest || er.Reason != ReasonMisdirected || er.Error == "" {
				t.Errorf("GET %s Host %q: %d %+v, want 421 misdirected", path, host, code, er)
			}
		}
		if code, er, _ := do(t, srv, "POST", "/p/offer", host, asJSON); code != http.StatusMisdirectedRequest || er.Reason != ReasonMisdirected {
			t.Errorf("POST Host %q: %d %+v", host, code, er)
		}
	}
	if offers.Load() != n {
		t.Errorf("misdirected offers reached the handler: %d", offers.Load()-n)
	}
	// The confirm path is answered whatever the Host.
	for _, host := range []string{"self", "probe", "attacker.example"} {
		if code, _, _ := do(t, srv, "GET", "/confirm", host, nil); code != http.StatusNoContent {
			t.Errorf("confirm Host %s: %d", host, code)
		}
	}
}

func TestGuardOrigin(t *testing.T) {
	srv, port, offers := guarded(t)
	own := "10.1.0.1:" + strconv.Itoa(port)
	for _, c := range []struct {
		hdr    map[string]string
		status int
		reason string
	}{
		{map[string]string{"Content-Type": "application/json", "Origin": "http://" + own}, 200, ""},
		{map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": "http://" + own}, 200, ""},
		{map[string]string{"Content-Type": "Application/JSON"}, 200, ""},
		{map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}, 200, ""},
		{map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "none"}, 200, ""},
		{map[string]string{"Content-Type": "text/plain", "Origin": "http://" + own}, 415, ReasonContentType},
		{map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, 415, ReasonContentType},
		{map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, ReasonContentType},
		{map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, ReasonContentType},
		{map[string]string{"Content-Type": "application/jsonx"}, 415, ReasonContentType},
		{map[string]string{}, 415, ReasonContentType},
		{map[string]string{"Content-Type": "text/plain", "Origin": "http://attacker.example:8080"}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Origin": "http://attacker.example:8080"}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Origin": "https://" + own}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Origin": "http://10.1.0.1:1"}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Origin": ""}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, 403, ReasonCrossSite},
		{map[string]string{"Content-Type": "application/json", "Origin": "http://" + own, "Sec-Fetch-Site": "cross-site"}, 403, ReasonCrossSite},
	} {
		before := offers.Load()
		code, er, _ := do(t, srv, "POST", "/p/offer", own, c.hdr)
		if code != c.status || er.Reason != c.reason {
			t.Errorf("%v: %d %+v, want %d %s", c.hdr, code, er, c.status, c.reason)
		}
		if reached := offers.Load() != before; reached != (c.status == 200) {
			t.Errorf("%v: handler reached %v", c.hdr, reached)
		}
	}
}

// Every answer carries the security headers, refusals too; the page
// names only files served beside it (no inline script or style the CSP
// would block).
func TestGuardHeaders(t *testing.T) {
	srv, port, _ := guarded(t)
	own := "10.1.0.1:" + strconv.Itoa(port)
	for _, c := range []struct{ method, path, host string }{{"GET", "/p", own}, {"GET", "/p/app.js", own}, {"GET", "/p/app.css", own},
		{"GET", "/p/noble/sha2.js", own}, {"GET", "/p/sodium/libsodium-sumo.js", own}, {"GET", "/p", "attacker.example"}, {"POST", "/p/offer", own}} {
		_, _, h := do(t, srv, c.method, c.path, c.host, nil)
		if h.Get("Content-Security-Policy") != CSP || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s (Host %s): %v", c.method, c.path, c.host, h)
		}
	}
	// WebAssembly may compile (libsodium, in the workers); nothing else unsafe.
	if !strings.Contains(CSP, "frame-ancestors 'none'") || strings.Contains(strings.ReplaceAll(CSP, "'wasm-unsafe-eval'", ""), "unsafe") || strings.Contains(CSP, "data:") || strings.Contains(CSP, "blob:") {
		t.Errorf("CSP %q", CSP)
	}
	page := mustRead(t, "index.html")
	if strings.Contains(page, "<style") || strings.Contains(page, " style=") || strings.Contains(page, "<script>") || containsHandlerAttr(page) {
		t.Errorf("index.html has inline code or style")
	}
	if strings.Contains(mustRead(t, "app.js"), ".style.") || strings.Contains(mustRead(t, "app.js"), "innerHTML") {
		t.Errorf("app.js writes inline style or markup")
	}
}

func containsHandlerAttr(page string) bool {
	for _, ev := range []string{"onclick=", "onload=", "onsubmit=", "onerror=", "oninput=", "onchange="} {
		if strings.Contains(page, ev) {
			return true
		}
	}
	return false
}

// FuzzGuardHost: any Host header is answered (never a panic), and one
// that is let through names an own address or name.
func FuzzGuardHost(f *testing.F) {
	for _, s := range []string{"10.1.0.1:8", "[fe80::1%25eth0]:8", "pairing-abcd1234.local:8", "attacker.example:8", "[", "[]:", ":8", "[::1]:99999", "a:b:c"} {
		f.Add(s)
	}
	g := &Guard{Port: 8, Names: []string{"pairing-abcd1234.local."}, IsOwn: func(a netip.Addr) bool { return a == netip.MustParseAddr("10.1.0.1") }}
	f.Fuzz(func(t *testing.T, host string) {
		r := httptest.NewRequest("GET", "/p", nil)
		r.Host = host
		if g.ownHost(r) {
			h, port, _ := splitHost(host)
			ip, isIP := hostIP(h)
			if (port != "" && port != "8") || (isIP && !ip.IsLoopback() && ip != netip.MustParseAddr("10.1.0.1")) ||
				(!isIP && strings.TrimSuffix(strings.ToLower(h), ".") != "pairing-abcd1234.local") {
				t.Fatalf("%q let through", host)
			}
		}
	})
}
