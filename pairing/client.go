package pairing

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

// Join errors.
var (
	// ErrImpostor: a device answered at an address but its fingerprint is
	// not the one in the link.
	ErrImpostor = errors.New("the device at the address is not the one in the QR code (different fingerprint: another device, or an impostor)")
	// ErrUnreachable: no address answered.
	ErrUnreachable = errors.New("device unreachable")
	// ErrServerProof: the device accepted us but could not prove the secret.
	ErrServerProof = errors.New("the device did not prove it knows the secret")
	// ErrNeedCode: a link without secret needs the code shown on the device.
	ErrNeedCode = errors.New("this link has no secret: the 6-digit code shown on the device is needed")
	// ErrSelf: the link is this device's own; a device never pairs with
	// itself. Join refuses it before it dials, and the server before it
	// looks at the proof: the window stays open and its attempts unspent.
	ErrSelf = errors.New("this is this device's own code")
)

const (
	// DefaultJoinTimeout bounds a whole join.
	DefaultJoinTimeout = 10 * time.Second
	// dialTimeout bounds one address: a LAN answers in milliseconds.
	dialTimeout = 1500 * time.Millisecond
	// discoverWait bounds the beacon fallback when no address answered.
	discoverWait = 2 * time.Second
)

// JoinOptions configure Join.
type JoinOptions struct {
	Identity *Identity
	Store    *Store
	Name     string
	// Code is the 6-digit code, for a link without secret.
	Code string
	// Beacon configures the discovery fallback (port, groups).
	Beacon beacon.Config
	// Port is this device's listener port, told to the device so that it
	// can reach us later (0: no daemon listens here).
	Port   uint16
	Logger *slog.Logger
}

// JoinResult is a successful join.
type JoinResult struct {
	Peer       PeerInfo
	DurationMS float64
	Via        string // "address" or "beacon"
}

// Join pairs with the device in p: it tries every address in the link
// over TLS pinned to the link's fingerprint, falls back to finding the
// device by beacon, proves the secret (or sends the code) bound to the TLS
// session, checks the device's proof and stores the device.
func Join(ctx context.Context, p *Payload, opt JoinOptions) (*JoinResult, error) {
	start := time.Now()
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.Identity != nil && p.Fingerprint == opt.Identity.Fingerprint {
		return nil, ErrSelf
	}
	if err := beacon.ValidName(opt.Name); err != nil {
		return nil, fmt.Errorf("this device's %w", err)
	}
	if p.Secret == nil && opt.Code == "" {
		return nil, ErrNeedCode
	}
	var tried []string
	var impostor, stalled error
	try := func(addrs []netip.AddrPort) *tls.Conn {
		c, errs := dialFirst(ctx, addrs, opt.Identity, p.Fingerprint)
		for a, err := range errs {
			tried = append(tried, fmt.Sprintf("%s: %v", a, err))
			if errors.Is(err, ErrImpostor) {
				impostor = fmt.Errorf("%w; at %s", err, a)
			}
			if errors.Is(err, ErrStalled) {
				stalled = err
			}
		}
		return c
	}
	var addrs []netip.AddrPort
	if p.Port != 0 {
		for _, a := range p.Candidates() {
			addrs = append(addrs, netip.AddrPortFrom(a, p.Port))
		}
	}
	via := "address"
	conn := try(addrs)
	if conn == nil && ctx.Err() == nil {
		found := findByBeacon(ctx, opt.Beacon, p, log)
		log.Debug("join: beacon fallback", "found", found)
		via = "beacon"
		if len(found) > 0 {
			conn = try(found)
		} else {
			tried = append(tried, "beacon: no device with this fingerprint answered a query")
		}
	}
	if conn == nil {
		if impostor != nil {
			return nil, impostor
		}
		if stalled != nil {
			return nil, fmt.Errorf("%w: %w: tried %s", ErrUnreachable, ErrStalled, strings.Join(tried, "; "))
		}
		return nil, fmt.Errorf("%w: tried %s", ErrUnreachable, strings.Join(tried, "; "))
	}
	defer conn.Close()
	remote, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	res, err := pairOver(ctx, conn, p, opt)
	if err != nil {
		return nil, err
	}
	// The device's name as it says it: it paired us already, so a name
	// that breaks the rule is neutralised rather than refused.
	if beacon.ValidName(res.Peer.Name) != nil {
		res.Peer.Name = cmp.Or(beacon.NeutralName(res.Peer.Name), p.Name, "device")
	}
	peer := PairedPeer{
		Fingerprint: p.Fingerprint, Name: res.Peer.Name, Kind: KindDevice,
		PairedAt: time.Now().UTC(), LastSeen: time.Now().UTC(),
		Addresses: OurZones(mergeAddrs([]netip.Addr{remote.Addr().Unmap()}, res.Peer.Addresses), remote.Addr()), Port: remote.Port(),
	}
	if err := opt.Store.Put(peer); err != nil {
		return nil, err
	}
	res.Peer.Addresses, res.Peer.Port = peer.Addresses, peer.Port
	out := &JoinResult{Peer: res.Peer, DurationMS: float64(time.Since(start).Microseconds()) / 1000, Via: via}
	log.Info("paired", "peer", res.Peer.ID, "name", res.Peer.Name, "at", remote, "via", via)
	return out, nil
}

// pinnedConfig is a TLS client config that presents id and accepts only
// the server whose certificate has fingerprint want.
func pinnedConfig(id *Identity, want ident.Fingerprint) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.TLSCertificate()},
		InsecureSkipVerify: true, // replaced by the fingerprint pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrImpostor
			}
			if got := ident.Of(cs.PeerCertificates[0].Raw); got != want {
				return fmt.Errorf("%w: fingerprint %s", ErrImpostor, got.ID())
			}
			return nil
		},
	}
}

// dialFirst dials every address at once and returns the first pinned TLS
// connection; errs holds why each other address failed.
func dialFirst(ctx context.Context, addrs []netip.AddrPort, id *Identity, want ident.Fingerprint) (*tls.Conn, map[netip.AddrPort]error) {
	errs := map[netip.AddrPort]error{}
	if len(addrs) == 0 {
		return nil, errs
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	type result struct {
		a   netip.AddrPort
		c   *tls.Conn
		err error
	}
	ch := make(chan result, len(addrs))
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Go(func() {
			if err := dialable(a.Addr()); err != nil {
				ch <- result{a, nil, err}
				return
			}
			var nd net.Dialer
			raw, err := nd.DialContext(ctx, "tcp", a.String())
			if err != nil {
				ch <- result{a, nil, err}
				return
			}
			c := tls.Client(raw, pinnedConfig(id, want))
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				var te *net.OpError
				if errors.As(err, &te) && te.Op == "remote error" {
					err = te.Err
				}
				if ctx.Err() != nil && !errors.Is(err, ErrImpostor) {
					// TCP connected, so nothing dropped the SYN; the
					// handshake's larger packets did not get through.
					err = fmt.Errorf("%w (%v)", ErrStalled, err)
				}
				ch <- result{a, nil, unwrapImpostor(err)}
				return
			}
			ch <- result{a, c, nil}
		})
	}
	go func() { wg.Wait(); close(ch) }()
	var best *tls.Conn
	for r := range ch {
		switch {
		case r.err != nil:
			errs[r.a] = r.err
		case best == nil:
			best = r.c
			cancel() // the others may stop
		default:
			r.c.Close()
		}
	}
	return best, errs
}

func unwrapImpostor(err error) error {
	if errors.Is(err, ErrImpostor) {
		// Keep just our message, not the TLS layers around it.
		var s = err.Error()
		if i := strings.Index(s, "fingerprint "); i >= 0 {
			return fmt.Errorf("%w: %s", ErrImpostor, s[i:])
		}
		return ErrImpostor
	}
	return err
}

func pairOver(ctx context.Context, conn *tls.Conn, p *Payload, opt JoinOptions) (*PairResponse, error) {
	cs := conn.ConnectionState()
	ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, err
	}
	req := PairRequest{Name: opt.Name, Kind: KindDevice, Port: opt.Port}
	key := p.Secret
	if p.Secret != nil {
		req.Proof = mac(p.Secret, clientLabel, ekm)
	} else {
		req.Code, key = opt.Code, []byte(opt.Code)
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://pair"+PathPair, bytes.NewReader(body)) // written to conn: the host is not used
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := hreq.Write(conn); err != nil {
		return nil, fmt.Errorf("send pairing request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), hreq)
	if err != nil {
		return nil, fmt.Errorf("read pairing answer: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var er ErrorResponse
		json.Unmarshal(rb, &er)
		for _, x := range reasons {
			if x.reason == er.Reason {
				return nil, fmt.Errorf("%w%s", x.err, detail(er.Error, x.err))
			}
		}
		return nil, fmt.Errorf("device refused: %s %s", resp.Status, strings.TrimSpace(string(rb)))
	}
	var pr PairResponse
	if err := json.Unmarshal(rb, &pr); err != nil {
		return nil, fmt.Errorf("bad pairing answer: %w", err)
	}
	if !hmacEqual(pr.Proof, mac(key, serverLabel, ekm)) {
		return nil, ErrServerProof
	}
	return &pr, nil
}

// detail keeps what the server added to a known error's message.
func detail(msg string, err error) string {
	rest := strings.TrimPrefix(msg, err.Error())
	if rest == msg {
		return ""
	}
	return rest
}

// findByBeacon queries the LAN and returns the addresses of the device
// whose fingerprint is the link's. A device whose secret hint differs is
// still returned: its answer (window closed, wrong secret) says more than
// "unreachable" would.
func findByBeacon(ctx context.Context, cfg beacon.Config, p *Payload, log *slog.Logger) []netip.AddrPort {
	ctx, cancel := context.WithTimeout(ctx, discoverWait)
	defer cancel()
	var out []netip.AddrPort
	beacon.Query(ctx, cfg, func(ev beacon.Event) bool {
		pk := ev.Packet
		if pk.Fingerprint != p.Fingerprint || pk.Port == 0 {
			return true
		}
		if p.Secret != nil && !bytes.Equal(pk.Hint, Hint(p.Secret)) {
			log.Info("join: the device's pairing window has another secret (or is closed)", "window_open", pk.WindowOpen)
		}
		for _, a := range append([]netip.Addr{ev.From.Addr()}, pk.Addrs...) {
			ap := netip.AddrPortFrom(a, pk.Port)
			if !containsAddrPort(out, ap) {
				out = append(out, ap)
			}
		}
		return false
	})
	return out
}

func containsAddrPort(s []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

// ErrStalled: TCP connected but the TLS handshake never finished: small
// packets pass and full-size ones do not (a path MTU problem), or the
// other side hangs.
var ErrStalled = errors.New("connected, but the TLS handshake stalled")

// ErrNoZone: a link-local address without the interface to dial it on.
var ErrNoZone = errors.New("link-local address without a zone (the interface to use)")

// dialable refuses a link-local IPv6 address without a zone: the kernel
// cannot tell which link it is on ("connect: invalid argument").
func dialable(a netip.Addr) error {
	if a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
		return fmt.Errorf("%w: %s", ErrNoZone, a)
	}
	return nil
}

// OurZones gives the link-local addresses a peer reported (zoned with
// the peer's own interface names, or none) the zone of our interface
// toward the peer: the one we reached it over (via). Those whose link
// is unknown are dropped; other addresses stay as they are.
func OurZones(addrs []netip.Addr, via netip.Addr) []netip.Addr {
	zone := via.Zone()
	if zone == "" {
		zone = interfaceToward(via)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.Is6() && a.IsLinkLocalUnicast() {
			if zone == "" {
				continue
			}
			a = a.WithZone(zone)
		}
		out = append(out, a)
	}
	return out
}

// interfaceToward names our interface whose prefix holds a, or "".
func interfaceToward(a netip.Addr) string {
	ifs, _ := net.Interfaces()
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok && n.Contains(a.AsSlice()) && ifi.Flags&net.FlagLoopback == 0 {
				return ifi.Name
			}
		}
	}
	return ""
}

func mergeAddrs(a, b []netip.Addr) []netip.Addr {
	out := append([]netip.Addr(nil), a...)
	for _, x := range b {
		found := false
		for _, y := range out {
			if y.WithZone("") == x.WithZone("") {
				found = true
			}
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}
