package beacon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// LoopResult is the multicast self-test of one interface and family.
type LoopResult struct {
	Interface string `json:"interface"`
	Family    string `json:"family"` // v4 or v6
	Joined    bool   `json:"joined"`
	Sent      bool   `json:"sent"`
	Received  bool   `json:"received"`
	Error     string `json:"error,omitempty"`
}

// Loopback joins the groups on every usable interface, sends a probe out
// of each, and checks that it comes back by multicast loop, until ctx
// ends. It proves this host can join and send; whether the network
// forwards multicast only other devices can tell.
func Loopback(ctx context.Context, cfg Config) ([]LoopResult, error) {
	cfg.setDefaults()
	ifs, err := cfg.Interfaces()
	if err != nil {
		return nil, err
	}
	var b [8]byte
	rand.Read(b[:])
	instance := binary.BigEndian.Uint64(b[:])
	probe, _ := (&Packet{Type: TypeAnnounce, Instance: instance}).Append(nil)
	var results []LoopResult
	type pending struct {
		i    int
		sock *socket
	}
	waiting := map[int]pending{} // by ifindex*2+family
	var socks []*socket
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	for _, v6 := range []bool{false, true} {
		fam, group := "v4", cfg.Group4
		if v6 {
			fam, group = "v6", cfg.Group6
		}
		recv, rerr := listenUDP(v6, cfg.Port)
		send, serr := listenUDP(v6, 0)
		if rerr == nil {
			socks = append(socks, recv)
		}
		if serr == nil {
			socks = append(socks, send)
		}
		for _, ifi := range ifs {
			if ok, _ := multicastInterface(ifi, v6); !ok {
				continue
			}
			r := LoopResult{Interface: ifi.Name, Family: fam}
			switch {
			case rerr != nil || serr != nil:
				r.Error = errors.Join(rerr, serr).Error()
			default:
				if err := recv.Join(&ifi, group); err != nil {
					r.Error = "join: " + err.Error()
					break
				}
				r.Joined = true
				if err := send.WriteTo(probe, netip.AddrPortFrom(group, uint16(cfg.Port)), ifi.Index); err != nil {
					r.Error = "send: " + err.Error()
					break
				}
				r.Sent = true
				key := ifi.Index * 2
				if v6 {
					key++
				}
				waiting[key] = pending{len(results), recv}
			}
			results = append(results, r)
		}
	}
	// Read every receiving socket until all probes are back or ctx ends.
	got := make(chan int, len(waiting)+1)
	for _, s := range socks {
		go func() { // ends when the deferred close closes s
			buf := make([]byte, MaxPacketSize+1)
			for {
				n, _, ifindex, err := s.Read(buf)
				if err != nil {
					return
				}
				if p, err := Decode(buf[:n]); err == nil && p.Instance == instance {
					key := ifindex * 2
					if s.V6 {
						key++
					}
					select {
					case got <- key:
					default:
					}
				}
			}
		}()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
	}
	for len(waiting) > 0 {
		select {
		case k := <-got:
			if p, ok := waiting[k]; ok {
				results[p.i].Received = true
				delete(waiting, k)
			}
		case <-ctx.Done():
			return results, nil
		}
	}
	return results, nil
}
