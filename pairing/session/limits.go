package session

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing/inbox"
	"github.com/lanpairing/pairing/pairing/rtc"
)

// What one peer may hold at once, whatever it does. Each is a few times
// what an honest device uses.
const (
	// maxFilesPerPeer bounds the files one device has arriving at once, on
	// every path together (data channels, direct TLS): each holds an
	// inbox reservation of its announced size and an open file. A device
	// sends one file at a time per send; two or three sends may overlap.
	maxFilesPerPeer = 4
	// maxConnsPerPeer bounds the WebRTC connections one device (a daemon
	// or a page) has answered at once: each costs sockets, goroutines and
	// buffers. A send opens one and keeps it; a page that reloads opens a
	// new one before ICE notices the old one gone. Past it the oldest
	// closes: a device can only push out its own.
	maxConnsPerPeer = 4
)

// ErrPeerBusy: a device has too many files arriving at once.
var ErrPeerBusy = errors.New("refused: too many files arriving from this device at once")

// partials counts the files arriving from each device.
type partials struct {
	mu sync.Mutex
	by map[ident.Fingerprint]int
}

// take reserves one of fp's slots, or says ErrPeerBusy.
func (p *partials) take(fp ident.Fingerprint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by[fp] >= maxFilesPerPeer {
		return fmt.Errorf("%w (at most %d)", ErrPeerBusy, maxFilesPerPeer)
	}
	if p.by == nil {
		p.by = map[ident.Fingerprint]int{}
	}
	p.by[fp]++
	return nil
}

func (p *partials) release(fp ident.Fingerprint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by[fp]--; p.by[fp] <= 0 {
		delete(p.by, fp)
	}
}

// count is how many files from fp are arriving now.
func (p *partials) count(fp ident.Fingerprint) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.by[fp]
}

// file starts receiving a file from fp into in, within fp's slots.
func (p *partials) file(in *inbox.Inbox, fp ident.Fingerprint, o rtc.Offer) (rtc.FileWriter, error) {
	if err := p.take(fp); err != nil {
		return nil, err
	}
	fw, err := in.File(fp, o)
	if err != nil {
		p.release(fp)
		return nil, err
	}
	return &slotFile{FileWriter: fw, release: sync.OnceFunc(func() { p.release(fp) })}, nil
}

// slotFile gives its slot back when it ends, either way.
type slotFile struct {
	rtc.FileWriter
	release func()
}

func (f *slotFile) Commit(sum string) error {
	defer f.release()
	return f.FileWriter.Commit(sum)
}

func (f *slotFile) Abort() {
	defer f.release()
	f.FileWriter.Abort()
}

func (f *slotFile) Suspend() {
	defer f.release()
	f.FileWriter.Suspend()
}

// inboxSink is the inbox as the data channels' sink, within each
// device's slots.
type inboxSink struct {
	in *inbox.Inbox
	p  *partials
}

func (s inboxSink) Text(from ident.Fingerprint, text string) error { return s.in.Text(from, text) }

func (s inboxSink) File(from ident.Fingerprint, o rtc.Offer) (rtc.FileWriter, error) {
	return s.p.file(s.in, from, o)
}

// peerConns is the answered WebRTC connections of each device, oldest
// first.
type peerConns struct {
	mu sync.Mutex
	by map[ident.Fingerprint][]*rtc.Session
}

// add records ss as fp's newest connection and returns the one it pushes
// out (to be closed), if any.
func (c *peerConns) add(fp ident.Fingerprint, ss *rtc.Session) *rtc.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[ident.Fingerprint][]*rtc.Session{}
	}
	list := append(c.by[fp], ss)
	var out *rtc.Session
	if len(list) > maxConnsPerPeer {
		out = list[0]
		list = slices.Delete(list, 0, 1)
	}
	c.by[fp] = list
	return out
}

// remove forgets ss.
func (c *peerConns) remove(fp ident.Fingerprint, ss *rtc.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := slices.DeleteFunc(c.by[fp], func(x *rtc.Session) bool { return x == ss })
	if len(list) == 0 {
		delete(c.by, fp)
	} else {
		c.by[fp] = list
	}
}

// count is how many connections of fp are open.
func (c *peerConns) count(fp ident.Fingerprint) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.by[fp])
}
