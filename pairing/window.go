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

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/limit"
)

// Errors of a pairing attempt; the server maps each to its own answer.
var (
	ErrWindowClosed = errors.New("no pairing window is open (it expired, or pairing already succeeded)")
	ErrWrongSecret  = errors.New("wrong secret: the QR code is not this device's current one")
	ErrWrongCode    = errors.New("wrong code")
	ErrCodeReused   = errors.New("this code was already used; wait for the next one")
	ErrTooMany      = errors.New("too many failed attempts from this address; wait a minute")
	// ErrTooManyAttempts: the window took MaxFailures wrong proofs or
	// codes and closed; only a new window (a new QR code) pairs.
	ErrTooManyAttempts = errors.New("too many wrong attempts; open a new window")
	// ErrNoCode: the open window was shown as a QR code, not sent as a
	// link, so it takes the secret only.
	ErrNoCode = errors.New("this pairing window takes no code (it was opened for a QR code); on the device, run 'pairing qr --link' for a link and its code")
)

const (
	// MaxFailures closes the window: 20 wrong 6-digit codes (two steps
	// valid at a time) give a 1 in 25,000 chance per window, and each new
	// window needs its owner; Matter and adb stop at about 20 too. A
	// 128-bit secret is never guessed, but the same cap ends the wrong
	// proofs that would otherwise keep a window busy.
	MaxFailures = 20
	// sourceBurst failures per source address (IPv6: per /64), then one
	// per minute, kept across windows: one host cannot use up a window's
	// failures alone.
	sourceBurst = 5
	sourceRate  = rate.Limit(1.0 / 60)
	// maxSources caps the sources whose failures are remembered.
	maxSources = 1024
	// codePeriod and codeDigits: the usual TOTP (RFC 6238) settings that
	// authenticator-style codes use.
	codePeriod = 30
	codeDigits = otp.DigitsSix
)

// Window is the pairing window: open for a lifetime, with a fresh secret,
// closed after a success or after MaxFailures wrong attempts. Safe for
// concurrent use.
type Window struct {
	Lifetime time.Duration
	Now      func() time.Time
	// OnChange is called (without locks held) when the window opens,
	// closes (also at the end of its lifetime), or starts taking codes.
	OnChange func(WindowInfo)

	mu      sync.Mutex
	stopped bool // Stop was called: the window never opens again
	cur     round
	closed  error // why the last window closed early (ErrTooManyAttempts)
	// succeeded is when a device last proved the secret or code (the
	// window then closes): a second phone scanning the same code hears
	// that another device took it.
	succeeded time.Time
	sources   limit.PerSource
	expiry    *time.Timer // fires at the end of the open window's lifetime
}

// round is one window, from its opening to its closing.
type round struct {
	open     bool
	code     bool // opened for a link: takes the code too
	secret   []byte
	expires  time.Time
	failures int
	lastStep int64
}

// WindowInfo is a snapshot of the window.
type WindowInfo struct {
	Open     bool
	Secret   []byte
	Expires  time.Time
	Failures int
	// Code: the window takes the 6-digit code (it was opened for a link).
	Code bool
	// Closed says why the last window closed early, if it did.
	Closed string
	// Succeeded is when a device last paired through a window.
	Succeeded time.Time
}

func (w *Window) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Open opens a window with a fresh secret, or returns the open one.
func (w *Window) Open() WindowInfo { return w.open(false) }

// OpenForLink is Open for a link without the secret: the window takes
// the 6-digit code too (an open window starts taking it).
func (w *Window) OpenForLink() WindowInfo { return w.open(true) }

func (w *Window) open(code bool) WindowInfo {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return WindowInfo{}
	}
	if w.cur.live(w.now()) && (w.cur.code || !code) {
		info := w.info()
		w.mu.Unlock()
		return info
	}
	if !w.cur.live(w.now()) {
		lifetime := w.Lifetime
		if lifetime == 0 {
			lifetime = config.DefaultPairWindow
		}
		secret := make([]byte, SecretLen)
		rand.Read(secret)
		w.cur = round{open: true, secret: secret, expires: w.now().Add(lifetime)}
		w.closed = nil
		w.sources.Rate, w.sources.Burst, w.sources.Max = sourceRate, sourceBurst, maxSources
		w.arm()
	}
	w.cur.code = w.cur.code || code
	info := w.info()
	w.mu.Unlock()
	w.changed(info)
	return info
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
	w.stopped, w.cur = true, round{}
	w.arm()
}

// arm sets the expiry timer to the open window's end (w.mu held).
func (w *Window) arm() {
	if w.expiry != nil {
		w.expiry.Stop()
	}
	w.expiry = nil
	if w.cur.open && !w.stopped {
		w.expiry = time.AfterFunc(w.cur.expires.Sub(w.now()), w.expire)
	}
}

// expire closes the window at the end of its lifetime and says so.
func (w *Window) expire() {
	w.mu.Lock()
	if !w.cur.open || w.now().Before(w.cur.expires) {
		w.mu.Unlock()
		return
	}
	w.cur = round{}
	w.mu.Unlock()
	w.changed(WindowInfo{})
}

// Close closes the window (after a success, or on request).
func (w *Window) Close() {
	w.mu.Lock()
	was := w.cur.open
	w.cur = round{}
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
	if !w.cur.live(w.now()) {
		return WindowInfo{Closed: errText(w.closed), Succeeded: w.succeeded}
	}
	return w.info()
}

// live: the round is open and its lifetime not over at now.
func (r round) live(now time.Time) bool { return r.open && now.Before(r.expires) }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (w *Window) info() WindowInfo {
	c := w.cur
	return WindowInfo{Open: c.open, Secret: append([]byte(nil), c.secret...), Expires: c.expires, Failures: c.failures, Code: c.code, Closed: errText(w.closed), Succeeded: w.succeeded}
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
	return w.attempt(src, false, func() error {
		if !verify(w.cur.secret) {
			return ErrWrongSecret
		}
		return nil
	})
}

// CheckCode runs one code-based attempt: the code of the current or the
// previous 30 s step, each step accepted once, in a window opened for a
// link only.
func (w *Window) CheckCode(src netip.Addr, code string) error {
	return w.attempt(src, true, func() error {
		now := w.now()
		for _, back := range []int64{0, 1} {
			t := now.Add(-time.Duration(back*codePeriod) * time.Second)
			want, err := Code(w.cur.secret, t)
			if err != nil {
				return err
			}
			if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
				continue
			}
			step := t.Unix() / codePeriod
			if step <= w.cur.lastStep {
				return ErrCodeReused
			}
			w.cur.lastStep = step
			return nil
		}
		return ErrWrongCode
	})
}

func (w *Window) attempt(src netip.Addr, code bool, check func() error) error {
	w.mu.Lock()
	now := w.now()
	switch {
	case !w.cur.live(w.now()) && w.closed != nil:
		w.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrWindowClosed, w.closed)
	case !w.cur.live(w.now()):
		w.mu.Unlock()
		return ErrWindowClosed
	case code && !w.cur.code:
		w.mu.Unlock()
		return ErrNoCode
	case !w.sources.Has(src, now):
		w.mu.Unlock()
		return ErrTooMany
	}
	err := check()
	if err == nil {
		w.succeeded = now
		w.mu.Unlock()
		return nil
	}
	w.sources.Take(src, now)
	w.cur.failures++
	capped := w.cur.failures >= MaxFailures
	if capped {
		w.cur, w.closed = round{}, ErrTooManyAttempts
		w.arm()
	}
	info := w.info()
	w.mu.Unlock()
	if capped {
		w.changed(info)
		return fmt.Errorf("%w; %w", err, ErrTooManyAttempts)
	}
	return err
}
