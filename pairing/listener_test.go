package pairing

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first n Accepts with EMFILE, as a listener does
// when the process is out of descriptors.
type flakyListener struct {
	net.Listener
	n int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestDemuxSurvivesAcceptErrors: accept errors are waited out; the
// listener serves again once they stop.
func TestDemuxSurvivesAcceptErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := newDemux(&flakyListener{Listener: ln, n: 8}, slog.New(slog.DiscardHandler))
	defer d.close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("G"))
	got := make(chan net.Conn, 1)
	go func() {
		if c, err := d.plain.Accept(); err == nil {
			got <- c
		}
	}()
	select {
	case pc := <-got:
		pc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection after the accept errors stopped")
	}
}

// TestDemuxConnectionCaps: one source gets maxConnsPerSource connections;
// the next is closed at once, and a closed one frees its slot.
func TestDemuxConnectionCaps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := newDemux(ln, slog.New(slog.DiscardHandler))
	defer d.close()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(held) < maxConnsPerSource {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Wait until the demux counted them all (they stay silent: idle).
	for end := time.Now().Add(5 * time.Second); d.conns.Count() < maxConnsPerSource; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d counted", d.conns.Count())
		}
	}
	extra, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	var ne net.Error
	if _, err := extra.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection past the cap stayed open: %v", err)
	}
	held[0].Close()
	held = held[1:]
	for end := time.Now().Add(6 * time.Second); d.conns.Count() >= maxConnsPerSource; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a closed connection did not free its slot")
		}
	}
}
