package pairing

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

// firstByteTimeout drops connections that stay silent: a client speaks
// first in both TLS and HTTP. A variable so a test can shorten it.
var firstByteTimeout = 5 * time.Second

// demux splits one listener into a TLS and a plain listener by the first
// byte of each connection (0x16 starts a TLS handshake).
type demux struct {
	ln        net.Listener
	tls       *chanListener
	plain     *chanListener
	wg        sync.WaitGroup
	closeOnce sync.Once
}

func newDemux(ln net.Listener) *demux {
	d := &demux{ln: ln, tls: newChanListener(ln.Addr()), plain: newChanListener(ln.Addr())}
	d.wg.Add(1)
	go d.run()
	return d
}

func (d *demux) run() {
	defer d.wg.Done()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			d.tls.close()
			d.plain.close()
			return
		}
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
