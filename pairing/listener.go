package pairing

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lanpairing/pairing/internal/limit"
)

// firstByteTimeout drops connections that stay silent: a client speaks
// first in both TLS and HTTP. A variable so a test can shorten it.
var firstByteTimeout = 5 * time.Second

// Connection limits of the listener. A phone page or a join opens a few
// connections; an idle flood opens thousands and would use up the
// descriptors (EMFILE), after which nothing could connect.
const (
	// maxConnsPerSource bounds one source (an IPv6 /64).
	maxConnsPerSource = 16
	// maxConns bounds everyone together, and a quarter of the descriptor
	// limit (the rest is for sessions, sockets and files).
	maxConns = 512
	// acceptBackoffMax bounds the wait after a failed Accept (net/http's).
	acceptBackoffMax = time.Second
)

// connLimit is maxConns, or a quarter of RLIMIT_NOFILE when that is less.
func connLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur/4 < maxConns {
		return max(int(rl.Cur/4), 4)
	}
	return maxConns
}

// demux splits one listener into a TLS and a plain listener by the first
// byte of each connection (0x16 starts a TLS handshake). It counts open
// connections per source and in total, and closes those past the limits
// at once.
type demux struct {
	ln        net.Listener
	tls       *chanListener
	plain     *chanListener
	conns     *limit.Conns
	log       *slog.Logger
	wg        sync.WaitGroup
	closeOnce sync.Once
}

func newDemux(ln net.Listener, log *slog.Logger) *demux {
	d := &demux{ln: ln, tls: newChanListener(ln.Addr()), plain: newChanListener(ln.Addr()), log: log,
		conns: &limit.Conns{PerSource: maxConnsPerSource, Total: connLimit()}}
	d.wg.Add(1)
	go d.run()
	return d
}

func (d *demux) run() {
	defer d.wg.Done()
	var backoff time.Duration
	var refused, failed int
	for {
		c, err := d.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			d.tls.close()
			d.plain.close()
			return
		}
		if err != nil {
			// EMFILE, ENFILE, ECONNABORTED…: wait and go on, as net/http
			// does; the listener never gives up while it is open.
			backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
			if failed++; failed == 1 || failed%100 == 0 {
				d.log.Warn("listener: accept failed; retrying", "err", err, "retry_in", backoff, "failures", failed)
			}
			time.Sleep(backoff)
			continue
		}
		backoff, failed = 0, 0
		src := addrOf(c.RemoteAddr())
		if !d.conns.Open(src) {
			c.Close()
			if refused++; refused == 1 || refused%1000 == 0 {
				d.log.Warn("listener: too many connections; refusing", "from", src, "open", d.conns.Count(), "refused", refused)
			}
			continue
		}
		c = &countedConn{Conn: c, release: func() { d.conns.Close(src) }}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			c.SetReadDeadline(time.Now().Add(firstByteTimeout))
			br := bufio.NewReader(c)
			b, err := br.Peek(1)
			if err != nil {
				c.Close()
				return
			}
			c.SetReadDeadline(time.Time{})
			pc := &peekedConn{Conn: c, r: br}
			if b[0] == 0x16 {
				d.tls.push(pc)
			} else {
				d.plain.push(pc)
			}
		}()
	}
}

func (d *demux) close() error {
	var err error
	d.closeOnce.Do(func() {
		err = d.ln.Close()
		d.wg.Wait()
	})
	return err
}

func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// countedConn releases its slot of the limits once, when it closes.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// chanListener is a net.Listener fed by the demux.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close()         { l.closed.Do(func() { close(l.done) }) }
func (l *chanListener) Close() error   { l.close(); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }
