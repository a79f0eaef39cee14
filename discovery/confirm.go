package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// ConfirmPath is the listener path the self-ping calls.
const ConfirmPath = "/confirm"

// Confirmer proves that an address reaches this process's listener. Mount
// it on the listener at ConfirmPath; Ping dials the listener at an address.
type Confirmer struct {
	// Port is the listener's TCP port.
	Port int

	mu      sync.Mutex
	pending map[string]*probe
}

type probe struct {
	addr     netip.Addr
	received bool
	local    netip.AddrPort
	remote   netip.AddrPort // who dialled it
}

// Evidence tells how an address was confirmed.
type Evidence struct {
	Nonce    string        `json:"nonce"`
	Local    string        `json:"received_on"` // where our listener got it
	RTT      time.Duration `json:"-"`
	RTTMicro int64         `json:"rtt_us"`
}

func (e Evidence) String() string {
	return fmt.Sprintf("nonce %s… received on %s in %s", e.Nonce[:8], e.Local, e.RTT.Round(10*time.Microsecond))
}

// ServeHTTP answers a self-ping: it records the nonce as received when the
// connection arrived on the address the nonce names.
func (c *Confirmer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	nonce := r.URL.Query().Get("nonce")
	named, err := netip.ParseAddr(r.URL.Query().Get("addr"))
	if err != nil || len(nonce) != 32 {
		http.Error(w, "bad self-ping: want nonce (32 hex) and addr", http.StatusBadRequest)
		return
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	tcp, _ := local.(*net.TCPAddr)
	if tcp == nil {
		http.Error(w, "no local address", http.StatusInternalServerError)
		return
	}
	at := tcp.AddrPort()
	at = netip.AddrPortFrom(at.Addr().Unmap(), at.Port())
	c.mu.Lock()
	p := c.pending[nonce]
	ok := p != nil && p.addr.WithZone("") == named.WithZone("") && at.Addr().WithZone("") == p.addr.WithZone("")
	if ok {
		p.received, p.local = true, at
		p.remote, _ = netip.ParseAddrPort(r.RemoteAddr)
	}
	c.mu.Unlock()
	if !ok {
		// Unknown nonce, or it arrived on another address than it names.
		http.Error(w, "nonce unknown here", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// maxExpected bounds the nonces waiting for another host to dial them.
const maxExpected = 64

// ErrTooManyExpected: too many reverse-probe nonces outstanding.
var ErrTooManyExpected = errors.New("too many reverse probes outstanding")

// Expect registers a nonce for ip that another host is to dial (a
// reverse probe). arrived then says whether it came, and from where;
// done forgets it.
func (c *Confirmer) Expect(ip netip.Addr) (nonce string, arrived func() (netip.AddrPort, bool), done func(), err error) {
	var raw [16]byte
	rand.Read(raw[:])
	nonce = hex.EncodeToString(raw[:])
	p := &probe{addr: ip}
	c.mu.Lock()
	if c.pending == nil {
		c.pending = map[string]*probe{}
	}
	if len(c.pending) >= maxExpected {
		c.mu.Unlock()
		return "", nil, nil, ErrTooManyExpected
	}
	c.pending[nonce] = p
	c.mu.Unlock()
	arrived = func() (netip.AddrPort, bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return p.remote, p.received
	}
	done = func() {
		c.mu.Lock()
		delete(c.pending, nonce)
		c.mu.Unlock()
	}
	return nonce, arrived, done, nil
}

// Ping dials our listener at ip with a fresh nonce and reports whether the
// listener received it there. Errors wrap ErrNotAddressable or ErrOtherHost.
func (c *Confirmer) Ping(ctx context.Context, ip netip.Addr) (Evidence, error) {
	return c.PingConnect(ctx, ip, 0)
}

// PingConnect is Ping whose TCP connect must succeed within connect (0:
// ctx alone bounds it). A connect that succeeded shows nothing dropped
// the SYN: the nonce's answer then gets the rest of ctx, so a busy
// machine is slow, not "not addressable".
func (c *Confirmer) PingConnect(ctx context.Context, ip netip.Addr, connect time.Duration) (Evidence, error) {
	var raw [16]byte
	rand.Read(raw[:])
	nonce := hex.EncodeToString(raw[:])
	p := &probe{addr: ip}
	c.mu.Lock()
	if c.pending == nil {
		c.pending = map[string]*probe{}
	}
	c.pending[nonce] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, nonce)
		c.mu.Unlock()
	}()

	target := netip.AddrPortFrom(ip, uint16(c.Port))
	client := &http.Client{Transport: &http.Transport{
		Proxy:             nil, // never through HTTP_PROXY: this is our own host
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: connect}
			return d.DialContext(ctx, "tcp", target.String())
		},
	}}
	defer client.CloseIdleConnections()
	u := fmt.Sprintf("http://self%s?nonce=%s&addr=%s", ConfirmPath, nonce, ip.WithZone(""))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Evidence{}, err
	}
	start := time.Now()
	resp, err := client.Do(req)
	rtt := time.Since(start)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap() // drop the URL, which names no real host
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.New("timed out (a firewall drops it?)")
		}
		return Evidence{}, fmt.Errorf("%w: %s: %v", ErrNotAddressable, target, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	c.mu.Lock()
	got, local := p.received, p.local
	c.mu.Unlock()
	if !got {
		return Evidence{}, fmt.Errorf("%w: %s answered %s without our nonce arriving", ErrOtherHost, target, resp.Status)
	}
	return Evidence{Nonce: nonce, Local: local.String(), RTT: rtt, RTTMicro: rtt.Microseconds()}, nil
}
