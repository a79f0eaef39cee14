package diag

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/pionlog"
	"github.com/lanpairing/pairing/internal/turncred"
)

// Candidate is one gathered ICE candidate.
type Candidate struct {
	Type     string `json:"type"`
	Address  string `json:"address"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
}

// turnCredentials are the static ones, or ones minted from the secret.
func (e *env) turnCredentials() (user, pass string) {
	if e.cfg.WebRTC.TURNSecret != "" {
		return turncred.Mint(e.cfg.WebRTC.TURNSecret, orText(e.cfg.WebRTC.TURNUser, "pairing"), time.Hour, e.cfg.Now())
	}
	return e.cfg.WebRTC.TURNUser, e.cfg.WebRTC.TURNPassword
}

// WebRTCFacts is the webrtc step's record: the ICE candidates gathered
// with the configured STUN and TURN servers, a TURN allocation on each
// TURN server, and the kernel's limit on UDP socket buffers.
type WebRTCFacts struct {
	Candidates []Candidate `json:"candidates"`
	// Gathering is "complete" or "incomplete after 1.5 s".
	Gathering string `json:"gathering"`
	Servers   int    `json:"servers"`
	Error     string `json:"error,omitempty"`
	// TURN are the allocations tried, one per TURN server.
	TURN []TURNAllocation `json:"turn,omitempty"`
	// UDPBufferLimit is net.core.rmem_max (0: unknown, see
	// UDPBufferError).
	UDPBufferLimit int    `json:"udp_buffer_limit"`
	UDPBufferError string `json:"udp_buffer_error,omitempty"`
}

// TURNAllocation is one TURN server's answer.
type TURNAllocation struct {
	URL   string `json:"url"`
	Relay string `json:"relay,omitempty"`
	Error string `json:"error,omitempty"`
	// Unauthorized: the server refused the credentials (401).
	Unauthorized bool `json:"unauthorized,omitempty"`
}

func gatherWebRTC(ctx context.Context, e *env, _ Facts) Facts {
	out := &WebRTCFacts{Gathering: "complete"}
	out.UDPBufferLimit, out.UDPBufferError = udpBuffers(e.cfg.UDPBufferLimit)
	user, pass := e.turnCredentials()
	var servers []webrtc.ICEServer
	for _, u := range e.cfg.WebRTC.STUN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}})
	}
	for _, u := range e.cfg.WebRTC.TURN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}, Username: user, Credential: pass})
	}
	out.Servers = len(servers)
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Logger: e.log}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // plain host candidates
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		out.Error = "webrtc: " + err.Error()
		return Facts{WebRTC: out}
	}
	defer pc.Close()
	var mu sync.Mutex
	var cands []Candidate
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			mu.Lock()
			cands = append(cands, Candidate{c.Typ.String(), c.Address, c.Port, c.Protocol.String()})
			mu.Unlock()
		}
	})
	if _, err := pc.CreateDataChannel("diag", nil); err != nil {
		out.Error = err.Error()
		return Facts{WebRTC: out}
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(pc) // before SetLocalDescription
		if err = pc.SetLocalDescription(offer); err == nil {
			gctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			select {
			case <-gathered:
			case <-gctx.Done():
				out.Gathering = "incomplete after 1.5 s"
			}
			cancel()
		}
	}
	if err != nil {
		out.Error = "webrtc: " + err.Error()
		return Facts{WebRTC: out}
	}
	mu.Lock()
	out.Candidates = append([]Candidate(nil), cands...)
	mu.Unlock()
	// A TURN allocation with the configured credentials says more than a
	// missing relay candidate: it names the server's answer.
	for _, u := range e.cfg.WebRTC.TURN {
		a := TURNAllocation{URL: u}
		relay, err := allocate(ctx, u, user, pass, e)
		if err != nil {
			a.Error = err.Error()
			a.Unauthorized = strings.Contains(err.Error(), "401") || strings.Contains(strings.ToLower(err.Error()), "unauthorized")
		} else {
			a.Relay = relay
		}
		out.TURN = append(out.TURN, a)
	}
	return Facts{WebRTC: out}
}

// udpBuffers reads the kernel's limit on socket buffers.
func udpBuffers(limit func() (int, error)) (int, string) {
	n, err := limit()
	if err != nil {
		return 0, err.Error()
	}
	return n, ""
}

// allocate makes one TURN allocation and returns the relayed address.
func allocate(ctx context.Context, url, user, pass string, e *env) (string, error) {
	addr := strings.TrimPrefix(strings.TrimPrefix(url, "turn:"), "turns:")
	addr, _, _ = strings.Cut(addr, "?")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "3478")
	}
	conn, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return "", err
	}
	defer conn.Close()
	client, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: user, Password: pass, LoggerFactory: pionlog.Factory{Logger: e.log}})
	if err != nil {
		return "", err
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { client.Close(); conn.Close() })
	defer stop()
	relay, err := client.Allocate()
	if err != nil {
		return "", err
	}
	defer relay.Close()
	return relay.LocalAddr().String(), nil
}
