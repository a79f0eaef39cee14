package session

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/inbox"
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

// TestSinkSlots: files arriving through the sink hold their device's
// slots in the real inbox, and every ending (commit, abort, suspend) gives
// its slot back once; another device is not held up.
func TestSinkSlots(t *testing.T) {
	p := &partials{}
	sink := inboxSink{in: &inbox.Inbox{Dir: t.TempDir(), MaxFile: 1 << 20}, p: p}
	var fp, other ident.Fingerprint
	other[0] = 1
	var open []rtc.FileWriter
	for i := range maxFilesPerPeer {
		fw, err := sink.File(fp, rtc.Offer{Name: fmt.Sprintf("f%d", i), Size: 1})
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, fw)
	}
	if _, err := sink.File(fp, rtc.Offer{Name: "more", Size: 1}); !errors.Is(err, ErrPeerBusy) {
		t.Fatalf("a file past the slots: %v", err)
	}
	fw, err := sink.File(other, rtc.Offer{Name: "theirs", Size: 1})
	if err != nil {
		t.Fatalf("another device held up: %v", err)
	}
	fw.Abort()
	open[0].Abort()
	open[0].Abort() // twice: one slot back
	open[1].Suspend()
	if n := p.count(fp); n != maxFilesPerPeer-2 {
		t.Fatalf("%d slots held, want %d", n, maxFilesPerPeer-2)
	}
	if _, err := sink.File(fp, rtc.Offer{Name: "../x", Size: 1}); err == nil {
		t.Fatal("a bad name accepted")
	}
	if n := p.count(fp); n != maxFilesPerPeer-2 {
		t.Fatalf("a refused file kept its slot: %d held", n)
	}
	open[2].Abort()
	open[3].Abort()
	if n := p.count(fp) + p.count(other); n != 0 {
		t.Fatalf("%d slots held after every file ended", n)
	}
}
