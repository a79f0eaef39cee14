package web

import (
	"errors"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lanpairing/pairing/pairing"
)

// The guard's refusals, as pairing.ErrorResponse carries them: Reason is
// what the page and scripts branch on, Error what a person reads.
var (
	// ErrMisdirected: the request names a host that is not this device
	// (a DNS-rebinding page, or a name the daemon does not know it has).
	ErrMisdirected = errors.New("this is not an address of the device: open the address in its QR code")
	// ErrCrossSite: a request that changes something came from a page of
	// another site.
	ErrCrossSite = errors.New("a request from another site's page is refused")
	// ErrContentType: a request that changes something must say its body
	// is JSON (a bulk chunk: application/octet-stream), which a page of
	// another site cannot do without asking first.
	ErrContentType = errors.New("the request body must be application/json (a bulk chunk: application/octet-stream)")
)

// Reason codes of the guard's refusals.
const (
	ReasonMisdirected = "misdirected"
	ReasonCrossSite   = "cross_site"
	ReasonContentType = "content_type"
)

// CSP is the page's Content-Security-Policy: scripts, styles, images and
// connections only from the daemon that served it (no inline code, no
// eval; WebAssembly may compile, for the vendored libsodium the page's
// workers run), no <base>, no form posted anywhere (the page's forms are
// handled by its script), no plugin, and no site may frame it.
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors 'none'"

// Guard is what every plain-HTTP request passes before its handler: the
// Host must be this device (an address of its interfaces, or its mDNS
// name), and a request that changes something must be same-origin JSON.
// A refusal is answered with a pairing.ErrorResponse and reaches no
// handler, so it uses no pending slot and no rate allowance. Every answer
// carries the page's security headers.
type Guard struct {
	// Port is the listener's port: a Host with another port is not us.
	Port int
	// IsOwn reports whether an address is one of this host's interfaces'.
	// The address a connection arrived at and loopback are always own.
	IsOwn func(netip.Addr) bool
	// Names are this device's host names (its mDNS name, "….local"),
	// matched without regard to case or a trailing dot.
	Names []string
	// AnyHost are paths served whatever the Host: the self-ping and
	// reverse-probe confirm path, dialled by IP with a made-up host name;
	// it reveals nothing.
	AnyHost []string
	Logger  *slog.Logger
}

// Wrap puts the guard in front of next.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		status, reason, err := g.check(r)
		if err != nil {
			if g.Logger != nil {
				g.Logger.Info("web: request refused", "from", pairing.RemoteIP(r), "method", r.Method, "path", r.URL.Path,
					"host", clip(r.Host), "origin", clip(r.Header.Get("Origin")), "reason", reason)
			}
			pairing.WriteJSON(w, status, pairing.ErrorResponse{Error: err.Error(), Reason: reason})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SecurityHeaders sets the headers every answer of the plain listener
// carries: the CSP, no framing (also for browsers without
// frame-ancestors), no type sniffing, no Referer to anywhere.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// check returns the refusal for r, or a nil error.
func (g *Guard) check(r *http.Request) (int, string, error) {
	for _, p := range g.AnyHost {
		if r.URL.Path == p {
			return 0, "", nil
		}
	}
	if !g.ownHost(r) {
		return http.StatusMisdirectedRequest, ReasonMisdirected, ErrMisdirected
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return 0, "", nil
	}
	if !sameOrigin(r) {
		return http.StatusForbidden, ReasonCrossSite, ErrCrossSite
	}
	want := "application/json"
	if strings.HasPrefix(r.URL.Path, "/p/bulk/") {
		want = "application/octet-stream" // a file's sealed chunk
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != want {
		return http.StatusUnsupportedMediaType, ReasonContentType, ErrContentType
	}
	return 0, "", nil
}

// ownHost reports whether r's Host names this device: an own address
// (IPv4, or IPv6 in brackets with or without the zone a browser may send
// as %25zone) or an own name, with the listener's port or none.
func (g *Guard) ownHost(r *http.Request) bool {
	host, port, ok := splitHost(r.Host)
	if !ok || (port != "" && port != strconv.Itoa(g.Port)) {
		return false
	}
	if ip, ok := hostIP(host); ok {
		return ip.IsLoopback() || ip == localIP(r) || (g.IsOwn != nil && g.IsOwn(ip))
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, n := range g.Names {
		if n = strings.TrimSuffix(strings.ToLower(n), "."); n != "" && n == name {
			return true
		}
	}
	return false
}

// splitHost splits a Host header into host and port ("" when absent);
// an IPv6 literal keeps its brackets.
func splitHost(h string) (host, port string, ok bool) {
	if h == "" {
		return "", "", false
	}
	i := strings.LastIndexByte(h, ':')
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", "", false
		}
		host, rest := h[:end+1], h[end+1:]
		if rest == "" {
			return host, "", true
		}
		if rest[0] != ':' || !digits(rest[1:]) {
			return "", "", false
		}
		return host, rest[1:], true
	}
	if i < 0 {
		return h, "", true
	}
	if !digits(h[i+1:]) || strings.IndexByte(h[:i], ':') >= 0 {
		return "", "", false // an IPv6 literal without brackets, or junk
	}
	return h[:i], h[i+1:], true
}

func digits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// hostIP reads an address literal of a Host: IPv4 bare, IPv6 in
// brackets; the zone is dropped.
func hostIP(host string) (netip.Addr, bool) {
	if inner, ok := strings.CutPrefix(host, "["); ok {
		inner = strings.TrimSuffix(inner, "]")
		inner = strings.Replace(inner, "%25", "%", 1)
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.WithZone(""), true
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// localIP is the address r's connection arrived at (no zone).
func localIP(r *http.Request) netip.Addr {
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if la == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// sameOrigin: what a browser says of where r comes from (Origin, and
// Sec-Fetch-Site where it sends it) is r's own origin. A request with
// neither is not from a browser's page: allowed.
func sameOrigin(r *http.Request) bool {
	if o, ok := r.Header["Origin"]; ok {
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		if len(o) != 1 || !strings.EqualFold(o[0], scheme+r.Host) {
			return false
		}
	}
	if s, ok := r.Header["Sec-Fetch-Site"]; ok {
		if len(s) != 1 || (s[0] != "same-origin" && s[0] != "none") {
			return false
		}
	}
	return true
}

// clip bounds a header value for the log.
func clip(s string) string {
	const n = 100 // enough for any real host or origin
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
