// Package control is the daemon's control-socket API: JSON over HTTP on a
// Unix socket, shared by the daemon and the pairing commands.
//
// # Types: mirrors, never aliases
//
// Every type the control API carries is declared here, with its JSON, and
// is the API's own: this package imports no other package of the module
// (internal/arch checks it), so a library's type can change without
// changing what scripts read from `pairing status --json`, and the API can
// change without touching a wire protocol. Where a library has the same
// thing (discovery.Address, pairing.PeerInfo, …) this package holds a
// mirror, not an alias, and the libraries do not alias or embed these
// types either: the peer-to-peer protocol's types are pairing's own. The
// daemon (pairing/daemon) converts the libraries' values into these when
// it answers, and the commands use the daemon's conversions when they
// work without a daemon, so both say the same. Only pairing/daemon, the
// commands (cmd) and diag import this package (internal/arch checks it):
// the libraries return their own types (pairing/session's SendResult and
// Connection, pairing/inbox's Item, pairing's PairedPeer), and diag,
// which may not import the daemon, turns the stored peers it reads into
// Paired itself.
//
// Errors that cross the socket carry a reason code (errors.go); callers
// branch on ReasonOf, never on the message.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// PathStatus is the status endpoint.
const PathStatus = "/v1/status"

// ErrNoDaemon means nothing listens on the control socket.
var ErrNoDaemon = errors.New("no pairing daemon is running")

// ErrNotAllowed means a daemon's control socket is there, but this user
// may not use it (not root, not in its group).
var ErrNotAllowed = errors.New("this user may not use the pairing daemon")

// Status is what the running daemon is doing.
type Status struct {
	Device
	// Addresses are the confirmed own addresses, best first.
	Addresses []Address `json:"addresses"`
	// Stages are the records of the last acquisition.
	Stages []Stage `json:"stages"`
	// AddressesChanged is when Addresses last changed.
	AddressesChanged time.Time `json:"addresses_changed"`
	// Peers are the devices on the LAN, paired first, at most MaxPeers;
	// PeersOmitted counts those left out.
	Peers        []Peer      `json:"peers"`
	PeersOmitted int         `json:"peers_omitted,omitempty"`
	Beacon       BeaconStats `json:"beacon"`
	Window       WindowState `json:"window"`
	// Paired counts paired devices; PairedOnline those on the LAN now.
	Paired       int `json:"paired"`
	PairedOnline int `json:"paired_online"`
	// Connections are the latest WebRTC sessions and direct transfers,
	// newest last.
	Connections []Connection `json:"connections"`
	WebRTC      WebRTCStats  `json:"webrtc"`
}

// WebRTCStats counts what the WebRTC library did beyond the connections.
type WebRTCStats struct {
	// DroppedPackets counts packets pion dropped in user space because a
	// buffer was full (ahead of SCTP: each costs a retransmission).
	DroppedPackets uint64 `json:"dropped_packets"`
}

// MaxPeers bounds the peers a Status lists.
const MaxPeers = 64

// Device is who the daemon is and how long it has run (in Status, its
// fields are at the top level of the JSON).
type Device struct {
	ID          string    `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Name        string    `json:"name"`
	Port        int       `json:"port"`
	Started     time.Time `json:"started"`
	Version     string    `json:"version"`
	UptimeS     float64   `json:"uptime_s"`
	StateDir    string    `json:"state_dir"`
}

// Address is one confirmed own address.
type Address struct {
	IP        netip.Addr `json:"ip"`
	Interface string     `json:"interface"`
	Stage     string     `json:"stage"`
	Confirmed bool       `json:"confirmed"`
	Evidence  string     `json:"evidence,omitempty"`
	// Proofs: the evidence, strongest first (kind reached, seen,
	// self-ping, not-reached; when; from whom; how).
	Proofs []Proof `json:"proofs,omitempty"`
	// Link is what the kernel says about the interface.
	Link *Link `json:"link,omitempty"`
	// Rank is 1 (reached by another host) … 4 (demoted); RankReason why.
	Rank       int    `json:"rank"`
	RankReason string `json:"rank_reason"`
}

// Proof is one piece of evidence about an own address.
type Proof struct {
	Kind   string    `json:"kind"`
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
	Via    string    `json:"via,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Trust  string    `json:"trust,omitempty"`
}

// Link is the kernel's facts about an interface.
type Link struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	Class     string   `json:"class"`
	Carrier   bool     `json:"carrier"`
	OperState string   `json:"operstate"`
	Gateway   bool     `json:"gateway,omitempty"`
	Wireless  bool     `json:"wireless,omitempty"`
	Ports     []string `json:"ports,omitempty"`
	MTU       int      `json:"mtu"`
	Why       string   `json:"why"`
}

// Stage is the record of one stage of the own-address acquisition.
type Stage struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	Details    any     `json:"details,omitempty"`
}

// Peer is a device seen on the LAN.
type Peer struct {
	ID          string       `json:"id"`
	Fingerprint string       `json:"fingerprint"`
	Name        string       `json:"name"`
	Addresses   []netip.Addr `json:"addresses"`
	Port        uint16       `json:"port"`
	// SeenAs is the address the peer saw us at (from a reply), if any.
	SeenAs netip.Addr `json:"seen_as,omitzero"`
	// Source is where the peer was first seen (beacon or mdns); Sources
	// lists every source that has seen it.
	Source     string    `json:"source"`
	Sources    []string  `json:"sources"`
	WindowOpen bool      `json:"window_open"`
	LastSeen   time.Time `json:"last_seen"`
}

// BeaconStats counts what the beacon did. Dropped counts invalid packets
// by reason: short, too_large, magic, version, type, field, off_link.
type BeaconStats struct {
	Received   uint64 `json:"received"`
	Sent       uint64 `json:"sent"`
	SendErrors uint64 `json:"send_errors"`
	// SendFailed counts the failed sends by reason (ENOBUFS, …).
	SendFailed  map[string]uint64 `json:"send_failed"`
	RateLimited uint64            `json:"rate_limited"`
	Own         uint64            `json:"own"`
	Dropped     map[string]uint64 `json:"dropped"`
	Joined      []string          `json:"joined"` // "eth0/v4", "eth0/v6"
	// PeersRefused counts new devices the peer table refused (too many
	// too fast, or a table full of paired devices).
	PeersRefused uint64 `json:"peers_refused"`
}

// Connection is one WebRTC session: its state sequence and selected pair.
type Connection struct {
	Peer string `json:"peer"`
	Role string `json:"role"` // offer or answer (webrtc), send or receive (tls)
	// Path is webrtc (a data channel) or tls (the direct transfer path).
	Path   string      `json:"path"`
	Events []ConnEvent `json:"events"`
	Pair   string      `json:"selected_pair,omitempty"`
}

// ConnEvent is one state change of a Connection.
type ConnEvent struct {
	AtMS  float64 `json:"at_ms"`
	What  string  `json:"what"`
	State string  `json:"state"`
}

// SendResult is a delivered message or file.
type SendResult struct {
	Peer   string `json:"peer"`
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256,omitempty"`
	// ConnectMS is the time to an open data channel: a new connection,
	// or the check that a kept one (Reused) still answers.
	ConnectMS float64 `json:"connect_ms"`
	Reused    bool    `json:"reused"`
	// Path is how it went: tls (direct) or webrtc (data channel).
	Path       string  `json:"path"`
	DurationMS float64 `json:"duration_ms"`
	Pair       string  `json:"selected_pair,omitempty"`
	// ResumedBytes is what the receiver already had of the file (kept
	// from a broken transfer): not sent again.
	ResumedBytes int64 `json:"resumed_bytes"`
}

// InboxItem is one thing a paired device sent.
type InboxItem struct {
	Kind string    `json:"kind"` // text or file
	From string    `json:"from"` // device ID
	Name string    `json:"from_name,omitempty"`
	At   time.Time `json:"at"`
	Text string    `json:"text,omitempty"`
	File string    `json:"file,omitempty"` // name in the inbox
	// Path is where the file is now (the inbox directory and File);
	// filled in when listed, not stored.
	Path   string `json:"path,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// WindowState says whether a pairing window is open and until when.
type WindowState struct {
	Open    bool      `json:"open"`
	Expires time.Time `json:"expires,omitzero"`
	// Closed says why the last window closed early (too many wrong
	// attempts), until a new one opens.
	Closed string `json:"closed,omitempty"`
}

// Client talks to a daemon's control socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, http: &http.Client{
		Timeout: 30 * time.Second, // a join may wait on the network
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	return &st, c.do(ctx, http.MethodGet, PathStatus, nil, &st)
}

// do sends one request (body as JSON when not nil) and decodes the answer
// into v; a failed request's ErrorBody becomes the error.
func (c *Client) do(ctx context.Context, method, path string, body, v any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://daemon"+path, rd)
	if err != nil {
		return err
	}
	return c.finish(c.http, req, v)
}

// socketError is a failure to reach the daemon, said as such.
func (c *Client) socketError(err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w at %s", ErrNoDaemon, c.Socket)
	}
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: a daemon runs at %s (permission denied)", ErrNotAllowed, c.Socket)
	}
	return fmt.Errorf("control socket %s: %w", c.Socket, err)
}

// finish sends req and decodes the answer into v.
func (c *Client) finish(hc *http.Client, req *http.Request, v any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return c.socketError(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(answer, &eb) == nil && eb.Error != "" {
			return &Error{Reason: eb.Reason, Message: eb.Error}
		}
		return fmt.Errorf("daemon answered %s: %s", resp.Status, answer)
	}
	if err := json.Unmarshal(answer, v); err != nil {
		return fmt.Errorf("daemon sent bad JSON: %w", err)
	}
	return nil
}

// Control endpoints beyond status.
const (
	PathWindow = "/v1/window"
	PathPeers  = "/v1/peers"
	PathJoin   = "/v1/join"
	PathSend   = "/v1/send"
	PathInbox  = "/v1/inbox"
	// PathInboxFile?name=NAME streams a received file.
	PathInboxFile = "/v1/inbox/file"
)

// Window is an open pairing window, as `pairing qr` shows it.
type Window struct {
	URL string `json:"url"`
	// QRURL is what the QR code carries: URL without what the page
	// fetches from the daemon itself (the other addresses, the name),
	// so the code stays small enough for a terminal.
	QRURL         string    `json:"qr_url"`
	LinkURL       string    `json:"link_url"`
	Fingerprint   string    `json:"fingerprint"`
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	SecretExpires time.Time `json:"secret_expires"`
	// Code is the 6-digit code, only for a window opened for a link.
	Code      string       `json:"code,omitempty"`
	Addresses []netip.Addr `json:"addresses"`
	Port      int          `json:"port"`
	// PreviousClosed says why the window before this one closed early.
	PreviousClosed string `json:"previous_closed,omitempty"`
	// Networks are the LANs this device has working addresses on, the
	// one the code is for (its first address's) first: a phone may be
	// on any of them, and `qr --address ADDR` gives the code for another.
	Networks []Network `json:"networks,omitempty"`
}

// Network is one LAN this device is on: the interface and the best
// address there.
type Network struct {
	Interface string     `json:"interface"`
	Address   netip.Addr `json:"address"`
}

// PeerInfo describes a device in pairing answers and `join` output.
type PeerInfo struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Fingerprint string       `json:"fingerprint"`
	Addresses   []netip.Addr `json:"addresses"`
	Port        uint16       `json:"port,omitempty"`
}

// JoinRequest asks the daemon to pair with the device in URL.
type JoinRequest struct {
	URL  string `json:"url"`
	Code string `json:"code,omitempty"`
}

// JoinResult is a successful join.
type JoinResult struct {
	Peer       PeerInfo `json:"peer"`
	DurationMS float64  `json:"duration_ms"`
	Via        string   `json:"via"` // "address" or "beacon"
}

// Paired is a paired device as `pairing peers` lists it.
type Paired struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Fingerprint string       `json:"fingerprint"`
	Kind        string       `json:"kind"`
	PairedAt    time.Time    `json:"paired_at"`
	LastSeen    time.Time    `json:"last_seen,omitzero"`
	Addresses   []netip.Addr `json:"addresses"`
	Port        uint16       `json:"port,omitempty"`
	Online      bool         `json:"online"`
}

// ErrorBody is the body of every failed control request.
type ErrorBody struct {
	Error string `json:"error"`
	// Reason is what a caller branches on (Reason…); empty for other
	// failures.
	Reason string `json:"reason,omitempty"`
}

// OpenWindow opens (or returns the open) pairing window; for a link, the
// window takes the 6-digit code too. host, when valid, is the address the
// QR code leads with (one of the confirmed ones).
func (c *Client) OpenWindow(ctx context.Context, link bool, host netip.Addr) (*Window, error) {
	q := url.Values{}
	if link {
		q.Set("link", "1")
	}
	if host.IsValid() {
		q.Set("address", host.String())
	}
	path := PathWindow
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var w Window
	return &w, c.do(ctx, http.MethodPost, path, nil, &w)
}

// Peers lists the paired devices.
func (c *Client) Peers(ctx context.Context) ([]Paired, error) {
	var p []Paired
	return p, c.do(ctx, http.MethodGet, PathPeers, nil, &p)
}

// Unpair forgets the paired device that peer names.
func (c *Client) Unpair(ctx context.Context, peer string) (*Paired, error) {
	var p Paired
	return &p, c.do(ctx, http.MethodDelete, PathPeers+"/"+url.PathEscape(peer), nil, &p)
}

// RenameRequest gives a paired device a new name.
type RenameRequest struct {
	Name string `json:"name"`
}

// Rename gives the paired device that peer names the name name.
func (c *Client) Rename(ctx context.Context, peer, name string) (*Paired, error) {
	var p Paired
	return &p, c.do(ctx, http.MethodPatch, PathPeers+"/"+url.PathEscape(peer), RenameRequest{Name: name}, &p)
}

// Inbox lists what paired devices sent.
func (c *Client) Inbox(ctx context.Context) ([]InboxItem, error) {
	var items []InboxItem
	return items, c.do(ctx, http.MethodGet, PathInbox, nil, &items)
}

// InboxCleared is what clearing the inbox removed.
type InboxCleared struct {
	Files int   `json:"files"` // received files deleted
	Bytes int64 `json:"bytes"` // their size
	Texts int   `json:"texts"` // texts dropped with the log
	// Missing are files the log named that were gone already.
	Missing int `json:"missing"`
}

// Send asks the daemon to deliver body (a text, or a file called name: a
// relative path inside a folder, '/'-separated, for a folder's file) to
// peer, over path (tls, webrtc, or "" for the daemon's setting); it
// streams body and has no time limit but ctx's.
func (c *Client) Send(ctx context.Context, peer, kind, name string, size int64, body io.Reader, path string) (*SendResult, error) {
	q := url.Values{"peer": {peer}, "kind": {kind}, "name": {name}, "size": {fmt.Sprint(size)}, "path": {path}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://daemon"+PathSend+"?"+q.Encode(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	hc := *c.http
	hc.Timeout = 0
	var r SendResult
	return &r, c.finish(&hc, req, &r)
}

// Join asks the daemon to pair with the device in a pairing URL.
func (c *Client) Join(ctx context.Context, req JoinRequest) (*JoinResult, error) {
	var r JoinResult
	return &r, c.do(ctx, http.MethodPost, PathJoin, req, &r)
}
