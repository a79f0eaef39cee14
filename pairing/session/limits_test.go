package session

import (
	"testing"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// TestPeerConnsKeepsNewest: past maxConnsPerPeer, each new connection
// pushes out the oldest one of the same device, and only that one.
func TestPeerConnsKeepsNewest(t *testing.T) {
	var c peerConns
	var fp, other ident.Fingerprint
	other[0] = 1
	var ss []*rtc.Session
	c.add(other, &rtc.Session{})
	for i := range 12 {
		s := &rtc.Session{Role: string(rune('a' + i))}
		ss = append(ss, s)
		out := c.add(fp, s)
		switch {
		case i < maxConnsPerPeer && out != nil:
			t.Fatalf("connection %d pushed out %v", i, out.Role)
		case i >= maxConnsPerPeer && out != ss[i-maxConnsPerPeer]:
			t.Fatalf("connection %d pushed out %v, want %s", i, out, ss[i-maxConnsPerPeer].Role)
		}
		if out != nil {
			c.remove(fp, out) // its goroutine does this once it closed
		}
		if n := c.count(fp); n != min(i+1, maxConnsPerPeer) {
			t.Fatalf("after %d: %d tracked", i, n)
		}
	}
	if c.count(other) != 1 {
		t.Fatal("another device's connection was touched")
	}
}

// TestPartialsPerPeer: a device has at most maxFilesPerPeer slots; a
// slot comes back once.
func TestPartialsPerPeer(t *testing.T) {
	var p partials
	var fp ident.Fingerprint
	for range maxFilesPerPeer {
		if err := p.take(fp); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.take(fp); err == nil {
		t.Fatal("a slot past the cap")
	}
	p.release(fp)
	if err := p.take(fp); err != nil {
		t.Fatal(err)
	}
}
