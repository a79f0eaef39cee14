package e2e

// Strangers that lie in reverse probes and beacons: they announce
// devices of their own (real keys, real listeners) and answer "timeout"
// to every probe, to demote our LAN address; they ask us to dial a
// bystander they claim as theirs; and they read what we tell them.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
)

// rankOf is the rank of n's address ip (0 when n does not list it).
func rankOf(t *testing.T, n *node, ip string) (int, *status) {
	t.Helper()
	st, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Addresses {
		if a.IP.String() == ip {
			return a.Rank, st
		}
	}
	return 0, st
}

// TestAttackProbeLiars: liars that answer every probe with "timeout".
// Two keys on one host are one opinion: alone with a, they demote
// nothing. Liars on two addresses do agree, but a device that really
// reached the address (b, a connection that arrived) outweighs them. In
// every phase a's LAN address keeps its rank, the liars' claims are
// recorded, and the QR code leads with an address b reaches.
func TestAttackProbeLiars(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, x := attackLAN(t, 2)
	a.Bridge("docker0", true, "172.17.0.1/16") // an address phones cannot reach
	a.serve()
	target := "10.1.0.1:" + strconv.Itoa(beacon.DefaultPort)
	keys := t.TempDir() // the liars keep their keys from one phase to the next
	listener := "LIAR_LISTENER=10.1.0.1:" + strconv.Itoa(a.port())
	out := x.RunTest(t, "TestHelperProbeLiars", "LIAR_SOURCES=10.1.0.100,10.1.0.100", "LIAR_TARGET="+target, "LIAR_SECONDS=8", "LIAR_KEYS="+keys, listener)
	r := result(t, out)
	if r["asked"] == 0 {
		t.Fatalf("a never asked the liars: %v", r)
	}
	if rank, st := rankOf(t, a, "10.1.0.1"); rank == discovery.RankDemoted {
		t.Fatalf("two keys of one host demoted a's LAN address: %s", addrDump(st))
	}
	b.serve()
	waitReachedBy(t, a, "10.1.0.1")
	done := make(chan string)
	go func() {
		done <- x.RunTest(t, "TestHelperProbeLiars", "LIAR_SOURCES=10.1.0.100,10.1.0.101", "LIAR_TARGET="+target, "LIAR_SECONDS=12", "LIAR_KEYS="+keys, listener)
	}()
	// A network change starts a round: the liars, known longer than b,
	// are asked first.
	time.Sleep(3 * time.Second)
	a.Must("ip", "addr", "add", "10.1.0.50/24", "dev", "eth0")
	r2 := result(t, <-done)
	t.Logf("one host: %v; two: %v", r, r2)
	if r2["asked"] < 2 {
		t.Fatalf("a did not ask both liars (known longer than b, keys shown): %v", r2)
	}
	rank, st := rankOf(t, a, "10.1.0.1")
	if rank == discovery.RankDemoted {
		t.Fatalf("liars demoted a's LAN address although b reached it: %s", addrDump(st))
	}
	if !hasProof(st, "10.1.0.1", discovery.ProofUnreached) {
		t.Fatalf("the liars' claims are not recorded: %s", addrDump(st))
	}
	if got := qrReachable(t, a, b); got != "10.1.0.1" {
		t.Fatalf("QR host %s", got)
	}
	if _, stderr, code := b.join(a.qr().URL); code != 0 {
		t.Fatalf("join after the attack: %s", stderr)
	}
}

// TestHelperProbeLiars runs one liar device per source: a TLS listener
// with a key of its own that answers every probe request "timeout", and
// beacons that announce it to LIAR_TARGET.
func TestHelperProbeLiars(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackProbeLiars")
	}
	secs, _ := strconv.Atoi(os.Getenv("LIAR_SECONDS"))
	var asked atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	for i, src := range strings.Split(os.Getenv("LIAR_SOURCES"), ",") {
		dir := filepath.Join(os.Getenv("LIAR_KEYS"), strconv.Itoa(i))
		os.MkdirAll(dir, 0o700)
		id, err := pairing.LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		// Show a the key from src (a TLS request with it): a then counts
		// the liar among the devices that proved who they are.
		postFrom(id, netip.MustParseAddr(src), os.Getenv("LIAR_LISTENER"), pairing.PathObserved, []byte(`{"addr":"10.1.0.1"}`))
		ln, err := tls.Listen("tcp", src+":0", &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.TLSCertificate()}, ClientAuth: tls.RequestClientCert})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != pairing.PathProbe {
				http.NotFound(w, r)
				return
			}
			asked.Add(1)
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
			var req pairing.ProbeRequest
			json.Unmarshal(body, &req)
			var resp pairing.ProbeResponse
			for _, tg := range req.Targets {
				resp.Results = append(resp.Results, discovery.ProbeResult{Addr: tg.Addr, Result: discovery.ProbeTimeout})
			}
			time.Sleep(discovery.ProbeDialTimeout) // as if it had waited
			json.NewEncoder(w).Encode(resp)
		})}
		go srv.Serve(ln)
		defer srv.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(os.Getenv("LIAR_TARGET"))))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			for n := uint64(0); ctx.Err() == nil; n++ {
				pk, _ := (&beacon.Packet{Type: beacon.TypeAnnounce, Fingerprint: id.Fingerprint, Instance: uint64(100 + i), Port: uint16(port),
					Name: fmt.Sprintf("liar%d", i), Addrs: []netip.Addr{netip.MustParseAddr(src)}}).Append(nil)
				c.Write(pk)
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
	}
	<-ctx.Done()
	printResult(t, map[string]int{"asked": int(asked.Load())})
}
