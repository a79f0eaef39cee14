package diag

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/pionlog"
	"github.com/lanpairing/pairing/internal/turncred"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// Candidate is one gathered ICE candidate.
type Candidate struct {
	Type     string `json:"type"`
	Address  string `json:"address"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
}

// turnCredentials are the static ones, or ones minted from the secret.
func (r *runner) turnCredentials() (user, pass string) {
	if r.cfg.WebRTC.TURNSecret != "" {
		return turncred.Mint(r.cfg.WebRTC.TURNSecret, orText(r.cfg.WebRTC.TURNUser, "pairing"), time.Hour, r.cfg.Now())
	}
	return r.cfg.WebRTC.TURNUser, r.cfg.WebRTC.TURNPassword
}

func stepWebrtc(r *runner, ctx context.Context, s *Step) {
	d := map[string]any{}
	s.Details = d
	user, pass := r.turnCredentials()
	var servers []webrtc.ICEServer
	for _, u := range r.cfg.WebRTC.STUN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}})
	}
	for _, u := range r.cfg.WebRTC.TURN {
		servers = append(servers, webrtc.ICEServer{URLs: []string{u}, Username: user, Credential: pass})
	}
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Logger: r.log}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // plain host candidates
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		s.Status, s.Error = Fail, "webrtc: "+err.Error()
		return
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
		s.Status, s.Error = Fail, err.Error()
		return
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(pc) // before SetLocalDescription
		if err = pc.SetLocalDescription(offer); err == nil {
			gctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			select {
			case <-gathered:
			case <-gctx.Done():
				d["gathering"] = "incomplete after 1.5 s"
			}
			cancel()
		}
	}
	if err != nil {
		s.Status, s.Error = Fail, "webrtc: "+err.Error()
		return
	}
	mu.Lock()
	d["candidates"] = append([]Candidate(nil), cands...)
	count := map[string]int{}
	for _, c := range cands {
		count[c.Type]++
	}
	mu.Unlock()
	s.Summary = fmt.Sprintf("candidates: %d host, %d srflx, %d relay", count["host"], count["srflx"], count["relay"])
	if len(servers) == 0 {
		s.Summary += "; no STUN/TURN server configured"
	}
	checkUDPBuffers(s, d, r.cfg.UDPBufferLimit)
	if count["host"] == 0 {
		s.Status, s.Error = Fail, "no host candidate"
		s.Hint = "WebRTC found no usable interface address"
		return
	}
	// A TURN allocation with the configured credentials says more than a
	// missing relay candidate: it names the server's answer.
	var allocs []string
	for _, u := range r.cfg.WebRTC.TURN {
		relay, err := allocate(ctx, u, user, pass, r)
		if err != nil {
			s.Status, s.Error = Fail, fmt.Sprintf("TURN %s: %v", u, err)
			if strings.Contains(err.Error(), "401") || strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
				s.Hint = "the TURN server refused the credentials: check turn-user and turn-password, or turn-secret (it must equal coturn's static-auth-secret), and that the clock is right"
			} else {
				s.Hint = "the TURN server did not answer: check its address and that UDP to it is allowed"
			}
			return
		}
		allocs = append(allocs, fmt.Sprintf("%s relays at %s", u, relay))
	}
	if len(allocs) > 0 {
		d["turn_allocations"] = allocs
		s.Summary += "; " + strings.Join(allocs, "; ")
	}
}

// checkUDPBuffers warns when the kernel keeps the daemon's sockets from
// the buffers file transfers need (the daemon runs without CAP_NET_ADMIN
// under systemd, so the limit applies to it).
func checkUDPBuffers(s *Step, d map[string]any, limit func() (int, error)) {
	n, err := limit()
	if err != nil {
		d["udp_buffer_limit"] = "unknown: " + err.Error()
		return
	}
	d["udp_buffer_limit"] = n
	if n < rtc.UDPBuffer {
		s.Status, s.Error = Warn, fmt.Sprintf("UDP socket buffers are limited to %d KiB (net.core.rmem_max), %d KiB wanted", n>>10, rtc.UDPBuffer>>10)
		s.Hint = "file transfers will drop packets and run at about half speed; " + rtc.BufferHint
	}
}

// allocate makes one TURN allocation and returns the relayed address.
func allocate(ctx context.Context, url, user, pass string, r *runner) (string, error) {
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
		Username: user, Password: pass, LoggerFactory: pionlog.Factory{Logger: r.log}})
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
