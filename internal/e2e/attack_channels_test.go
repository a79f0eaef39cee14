package e2e

// Data channels beyond the first on one WebRTC connection: a stranger's
// browser (inside a pairing window) and a paired device each open many.
// Before the fix, the second one crashed the daemon (close of a closed
// channel); without a bound, each one cost memory.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// extraChannels is how many channels the attacker opens after the first.
const extraChannels = 300

func TestAttackDataChannels(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, x := pairedAttackLAN(t)
	a.qr() // a window is open: strangers may offer
	url := "http://10.1.0.1:" + strconv.Itoa(a.port()) + "/p/offer"
	before := rssMB(t, a.daemon.Pid())
	out := x.RunTest(t, "TestHelperAttackChannels", "ATTACK_URL="+url, "ATTACK_SOURCE=10.1.0.100")
	r := result(t, out)
	t.Logf("attacker: %v; daemon RSS %.1f → %.1f MB", r, before, rssMB(t, a.daemon.Pid()))
	if r["answered"] != 1 || r["first_open"] != 1 {
		t.Fatalf("the attacker's connection did not come up: %v", r)
	}
	if r["extra_closed"] < extraChannels-5 {
		t.Fatalf("%d of %d extra data channels were closed by the daemon, want all", r["extra_closed"], extraChannels)
	}
	select {
	case <-a.daemon.Done():
		t.Fatalf("the daemon exited:\n%s", a.daemon.Stderr())
	default:
	}
	// The paired list is intact, and a legitimate send and join work.
	if p := a.peers(); len(p) != 1 || p[0].Name != "b" {
		t.Fatalf("paired list after the attack: %+v", p)
	}
	if _, stderr, code := b.send("a", "after the attack"); code != 0 {
		t.Fatalf("send after the attack: %s", stderr)
	}
}

func TestHelperAttackChannels(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackDataChannels")
	}
	counts := map[string]int{}
	defer printResult(t, counts)
	id := attacker(t)
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{rtc.Certificate(id.Key, id.Cert)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	first, err := pc.CreateDataChannel("pairing", nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	first.OnOpen(func() { close(opened) })
	offer, _ := pc.CreateOffer(nil)
	done := webrtc.GatheringCompletePromise(pc)
	pc.SetLocalDescription(offer)
	<-done
	body, _ := json.Marshal(pairing.ConnectMessage{SDP: pc.LocalDescription().SDP})
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(os.Getenv("ATTACK_SOURCE"))}, Timeout: 2 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodPost, os.Getenv("ATTACK_URL"), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans pairing.ConnectMessage
	json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Logf("offer answered %d", resp.StatusCode)
		return
	}
	counts["answered"]++
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
		counts["first_open"]++
	case <-time.After(10 * time.Second):
		return
	}
	var closed atomic.Int32
	for i := range extraChannels {
		dc, err := pc.CreateDataChannel(fmt.Sprintf("extra-%d", i), nil)
		if err != nil {
			counts["create_error"]++
			continue
		}
		dc.OnClose(func() { closed.Add(1) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil && closed.Load() < extraChannels {
		time.Sleep(50 * time.Millisecond)
	}
	counts["extra_closed"] = int(closed.Load())
}
