package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// The direct transfer's resume, on pairing.PathTransfer (see proto.go): optional
// parts an older peer ignores.
//
//   - Query "path": the relative path of a file inside a folder (as the
//     data channel's "path"); "name" stays its base name.
//   - Query "head": the hex SHA-256 of the first rtc.HeadSize bytes; it
//     asks for a resume. A receiver that kept a partial of the same file
//     answers the request's Expect: 100-continue with a 100 that carries
//     HeaderOffset (the bytes it holds) and HeaderPrefix (their SHA-256,
//     read back from its disk). The sender hashes its own first bytes:
//     equal, the body is the file from that offset on; not equal, the
//     body is empty with the trailer HeaderDiscard, the receiver removes
//     its partial and answers 409 with reason ReasonResumeMismatch. A
//     plain 100 (an older receiver, or nothing kept) means offset 0.
//   - The trailer Sha256 is always the whole file's SHA-256.
const (
	HeaderOffset  = "Pairing-Offset"
	HeaderPrefix  = "Pairing-Prefix-Sha256"
	HeaderDiscard = "Pairing-Discard"
	// ReasonResumeMismatch: the receiver's partial was not the start of
	// the file sent; send it again from the start.
	ReasonResumeMismatch = "resume_mismatch"
)

// DirectResult is what a direct send did.
type DirectResult struct {
	SHA256 string
	At     netip.AddrPort // the address that connected
	// Resumed is the bytes the receiver already had.
	Resumed int64
}

// SendFileDirect sends the file o (o.Size bytes from r) to the paired
// device fp over mutually authenticated TLS 1.3 (pinned to fp) at the
// first of addrs that connects, resuming where the receiver's kept
// partial of the same file ends. The receiver checks path and size
// before a byte is sent (100-continue) and confirms the SHA-256 it
// computed; the result's sum is the one both sides agree on. pairing.ErrNoDirect
// (nothing connected, or an older device without the endpoint) means
// nothing was sent; rtc.ErrResumeMismatch means the receiver's partial
// differed (it removed it) and the file must be sent again.
func SendFileDirect(ctx context.Context, id *pairing.Identity, fp ident.Fingerprint, addrs []netip.AddrPort, o rtc.Offer, r io.Reader) (DirectResult, error) {
	return sendDirect(ctx, id, fp, addrs, o, r, true)
}

func sendDirect(ctx context.Context, id *pairing.Identity, fp ident.Fingerprint, addrs []netip.AddrPort, o rtc.Offer, r io.Reader, resume bool) (DirectResult, error) {
	size := o.Size
	q := url.Values{"name": {o.Name}, "size": {strconv.FormatInt(size, 10)}}
	if o.Path != "" && o.Path != o.Name {
		q.Set("path", o.Path)
	}
	var src io.Reader = r
	if resume {
		head, all, err := rtc.ReadHead(r, size)
		if err != nil {
			return DirectResult{}, err
		}
		q.Set("head", head)
		src = all
	}
	conn, err := pairing.DialPinned(ctx, id, fp, addrs)
	if err != nil {
		return DirectResult{}, err
	}
	res := DirectResult{}
	res.At, _ = netip.ParseAddrPort(conn.RemoteAddr().String())
	used := false
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, ExpectContinueTimeout: 5 * time.Second,
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			if used {
				return nil, errors.New("one connection per transfer")
			}
			used = true
			return conn, nil
		}}
	defer tr.CloseIdleConnections()
	body := &resumeBody{src: src, size: size, h: sha256.New(), ready: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		once.Do(func() {
			if n, err := strconv.ParseInt(h.Get(HeaderOffset), 10, 64); err == nil && n > 0 && resume {
				body.off, body.prefix = n, h.Get(HeaderPrefix)
			}
			close(body.ready)
		})
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, "https://peer"+pairing.PathTransfer+"?"+q.Encode(), nil)
	if err != nil {
		conn.Close()
		return res, err
	}
	body.ctx, body.req = ctx, req
	req.Body = io.NopCloser(body)
	req.ContentLength = -1
	req.Trailer = http.Header{"Sha256": nil, HeaderDiscard: nil}
	req.Header.Set("Expect", "100-continue")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	close(body.done)
	if err != nil {
		if body.n.Load() == 0 && ctx.Err() == nil && !body.mismatch.Load() {
			return res, fmt.Errorf("%w: %v", pairing.ErrNoDirect, err)
		}
		return res, fmt.Errorf("after %d of %d bytes: %w (%v)", body.off+body.n.Load(), size, rtc.ErrConnectionLost, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, pairing.MaxRequestBody))
	if resp.StatusCode == http.StatusNotFound && body.n.Load() == 0 {
		return res, fmt.Errorf("%w: the device has no transfer endpoint (an older version)", pairing.ErrNoDirect)
	}
	if resp.StatusCode != http.StatusOK {
		var er pairing.ErrorResponse
		json.Unmarshal(b, &er)
		if er.Reason == ReasonResumeMismatch || body.mismatch.Load() {
			return res, rtc.ErrResumeMismatch
		}
		if er.Error == "" {
			er.Error = resp.Status
		}
		return res, fmt.Errorf("the receiver refused: %s", er.Error)
	}
	var tres pairing.TransferResponse
	if err := json.Unmarshal(b, &tres); err != nil || tres.SHA256 != hex.EncodeToString(body.h.Sum(nil)) || body.off+body.n.Load() != size {
		return res, fmt.Errorf("the receiver did not confirm the file (%d of %d bytes sent)", body.off+body.n.Load(), size)
	}
	res.SHA256, res.Resumed = tres.SHA256, body.off
	return res, nil
}

// resumeBody is a direct transfer's request body: it waits for the
// receiver's 100 (which may name an offset), checks the prefix, then
// reads the rest of the file through the whole file's hash and sets the
// trailers at its end.
type resumeBody struct {
	ctx         context.Context
	req         *http.Request
	src         io.Reader
	size        int64
	h           hash.Hash
	ready, done chan struct{}
	off         int64  // set before ready closes
	prefix      string // set before ready closes

	rest     io.Reader    // nil until the first Read
	n        atomic.Int64 // bytes of the body read (from off on)
	mismatch atomic.Bool
}

func (b *resumeBody) Read(p []byte) (int, error) {
	if b.rest == nil {
		select {
		case <-b.ready:
		case <-b.done:
			return 0, errors.New("the request ended")
		case <-b.ctx.Done():
			return 0, context.Cause(b.ctx)
		}
		if b.off > 0 {
			ok, err := rtc.SkipPrefix(b.h, b.src, b.off, b.size, b.prefix)
			if err != nil {
				return 0, err
			}
			if !ok {
				b.mismatch.Store(true)
				b.req.Trailer.Set(HeaderDiscard, "1")
				b.rest = eofReader{}
				return 0, io.EOF
			}
		}
		b.rest = io.LimitReader(b.src, b.size-b.off)
	}
	n, err := b.rest.Read(p)
	b.h.Write(p[:n])
	b.n.Add(int64(n))
	if err == io.EOF && !b.mismatch.Load() {
		b.req.Trailer.Set("Sha256", hex.EncodeToString(b.h.Sum(nil)))
	}
	return n, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// SendFileTLS sends a file of size bytes from r to the paired device fp
// over mutually authenticated TLS 1.3 (pinned to fp) at the first of addrs
// that connects, without asking for a resume (SendFileDirect does). The
// returned sum is the one both sides agree on. pairing.ErrNoDirect (nothing
// connected, or an older device without the endpoint) means nothing was
// read from r.
func SendFileTLS(ctx context.Context, id *pairing.Identity, fp ident.Fingerprint, addrs []netip.AddrPort, name string, size int64, r io.Reader) (string, netip.AddrPort, error) {
	res, err := sendDirect(ctx, id, fp, addrs, rtc.Offer{Name: name, Size: size}, r, false)
	return res.SHA256, res.At, err
}
