package pairing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/time/rate"
)

// Errors of a pairing attempt; the server maps each to its own answer.
var (
	ErrWindowClosed = errors.New("no pairing window is open (it expired, or pairing already succeeded)")
	ErrWrongSecret  = errors.New("wrong secret: the QR code is not this device's current one")
	ErrWrongCode    = errors.New("wrong code")
	ErrCodeReused   = errors.New("this code was already used; wait for the next one")
	ErrTooMany      = errors.New("too many failed attempts from this address; wait a minute")
)

const (
	// DefaultWindowLifetime is long enough to walk to a phone and scan,
	// short enough that a forgotten window closes by itself.
	DefaultWindowLifetime = 10 * time.Minute
	// MaxFailures burns the secret: 10 guesses of a 6-digit code give a
	// 1 in 100000 chance; a 128-bit secret is never guessed.
	MaxFailures = 10
	// sourceBurst failures per source address, then one per minute: one
	// host cannot use up the window's failures alone.
	sourceBurst = 5
	sourceRate  = rate.Limit(1.0 / 60)
	// codePeriod and codeDigits: the usual TOTP (RFC 6238) settings that
	// authenticator-style codes use.
	codePeriod = 30
	codeDigits = otp.DigitsSix
)

// Window is the pairing window: open for a lifetime, with a fresh secret,
// closed after a success. Safe for concurrent use.
type Window struct {
	Lifetime time.Duration
	Now      func() time.Time
	// OnChange is called (without locks held) when the window opens,
	// closes (also at the end of its lifetime), or its secret is replaced.
	OnChange func(WindowInfo)

	mu       sync.Mutex
	stopped  bool // Stop was called: the window never opens again
	open     bool
	secret   []byte
	expires  time.Time
	failures int
	lastStep int64
	sources  map[netip.Addr]*rate.Limiter
	expiry   *time.Timer // fires at the end of the open window's lifetime
}

// WindowInfo is a snapshot of the window.
type WindowInfo struct {
	Open     bool
	Secret   []byte
	Expires  time.Time
	Failures int
}

func (w *Window) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Open opens a window with a fresh secret, or returns the open one.
func (w *Window) Open() WindowInfo {
	w.mu.Lock()
	if w.isOpen() {
		info := w.info()
		w.mu.Unlock()
		return info
	}
	if w.stopped {
		w.mu.Unlock()
		return WindowInfo{}
	}
	w.renew()
	w.open = true
	lifetime := w.Lifetime
	if lifetime == 0 {
		lifetime = DefaultWindowLifetime
	}
	w.expires = w.now().Add(lifetime)
	w.arm()
	info := w.info()
	w.mu.Unlock()
	w.changed(info)
	return info
}

// arm sets the expiry timer to the open window's end (w.mu held).
func (w *Window) arm() {
	if w.expiry != nil {
		w.expiry.Stop()
	}
	w.expiry = nil
	if w.open && !w.stopped {
		w.expiry = time.AfterFunc(w.expires.Sub(w.now()), w.expire)
	}
}

// expire closes the window at the end of its lifetime and says so.
func (w *Window) expire() {
	w.mu.Lock()
	if !w.open || w.now().Before(w.expires) {
		w.mu.Unlock()
		return
	}
	w.open, w.secret = false, nil
	w.mu.Unlock()
	w.changed(WindowInfo{})
}

// SetLifetime changes the lifetime of windows opened from now on.
func (w *Window) SetLifetime(d time.Duration) {
	w.mu.Lock()
	w.Lifetime = d
	w.mu.Unlock()
}

// Stop closes the window for good without telling OnChange (the daemon
// is stopping) and stops its timer.
func (w *Window) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped, w.open, w.secret = true, false, nil
	w.arm()
}

// Close closes the window (after a success, or on request).
func (w *Window) Close() {
	w.mu.Lock()
	was := w.open
	w.open, w.secret = false, nil
	w.arm()
	info := w.info()
	w.mu.Unlock()
	if was {
		w.changed(info)
	}
}

// Info returns the window's state; an expired window reads as closed.
func (w *Window) Info() WindowInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.isOpen() {
		return WindowInfo{}
	}
	return w.info()
}

func (w *Window) isOpen() bool { return w.open && w.now().Before(w.expires) }

func (w *Window) info() WindowInfo {
	return WindowInfo{Open: w.open, Secret: append([]byte(nil), w.secret...), Expires: w.expires, Failures: w.failures}
}

func (w *Window) renew() {
	w.secret = make([]byte, SecretLen)
	rand.Read(w.secret)
	w.failures, w.lastStep = 0, 0
	w.sources = map[netip.Addr]*rate.Limiter{}
}

func (w *Window) changed(info WindowInfo) {
	if w.OnChange != nil {
		w.OnChange(info)
	}
}

// Hint is a truncated HMAC of the secret that beacons carry, so a client
// that scanned the QR code finds the right device even when the code's
// addresses are stale. It reveals nothing usable about the secret.
func Hint(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("pairing secret hint v1"))
	return m.Sum(nil)[:8]
}

// Code is the 6-digit TOTP of secret at t.
func Code(secret []byte, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(base32.StdEncoding.EncodeToString(secret), t,
		totp.ValidateOpts{Period: codePeriod, Digits: codeDigits, Algorithm: otp.AlgorithmSHA1})
}

// CheckProof runs one secret-based attempt from src: verify gets the
// current secret and reports whether the peer proved it. A failure counts
// against the window and the source.
func (w *Window) CheckProof(src netip.Addr, verify func(secret []byte) bool) error {
	return w.attempt(src, func() error {
		if !verify(w.secret) {
			return ErrWrongSecret
		}
		return nil
	})
}

// CheckCode runs one code-based attempt: the code of the current or the
// previous 30 s step, each step accepted once.
func (w *Window) CheckCode(src netip.Addr, code string) error {
	return w.attempt(src, func() error {
		now := w.now()
		for _, back := range []int64{0, 1} {
			t := now.Add(-time.Duration(back*codePeriod) * time.Second)
			want, err := Code(w.secret, t)
			if err != nil {
				return err
			}
			if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
				continue
			}
			step := t.Unix() / codePeriod
			if step <= w.lastStep {
				return ErrCodeReused
			}
			w.lastStep = step
			return nil
		}
		return ErrWrongCode
	})
}

func (w *Window) attempt(src netip.Addr, check func() error) error {
	w.mu.Lock()
	if !w.isOpen() {
		w.mu.Unlock()
		return ErrWindowClosed
	}
	lim := w.sources[src]
	if lim == nil {
		lim = rate.NewLimiter(sourceRate, sourceBurst)
		w.sources[src] = lim
	}
	if lim.TokensAt(w.now()) < 1 {
		w.mu.Unlock()
		return ErrTooMany
	}
	err := check()
	if err == nil {
		w.mu.Unlock()
		return nil
	}
	lim.AllowN(w.now(), 1)
	w.failures++
	burned := w.failures >= MaxFailures
	if burned {
		w.renew()
		w.arm()
	}
	info := w.info()
	w.mu.Unlock()
	if burned {
		w.changed(info)
		return fmt.Errorf("%w (%d failures: the secret was replaced; scan the new code)", err, MaxFailures)
	}
	return err
}
