package diag

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/pairing"
)

// procUnix lists the Unix sockets of this network namespace; a test may
// swap it.
var procUnix = "/proc/net/unix"

// DaemonFacts is the daemon step's record: where the running daemon was
// looked for, where it answered, and what it said.
type DaemonFacts struct {
	// Socket is the control socket asked first (--socket).
	Socket string `json:"socket"`
	// Tried are the sockets asked, with their answers.
	Tried []SocketTry `json:"tried"`
	// FoundAt is the socket a daemon answered at, "" when none did.
	FoundAt string          `json:"found_at,omitempty"`
	Status  *control.Status `json:"status,omitempty"`
	// NotAllowed: a daemon's socket is there but this user may not use it.
	NotAllowed bool   `json:"not_allowed,omitempty"`
	Error      string `json:"error,omitempty"`
}

// SocketTry is one control socket asked.
type SocketTry struct {
	Path   string `json:"path"`
	Answer string `json:"answer"` // status | no daemon | not allowed | the error
}

// socketCandidates are the sockets to ask, the configured one first:
// then pairing's default paths, then every listening Unix socket of this
// namespace named pairing.sock (a daemon started with --socket).
func socketCandidates(configured string) []string {
	out := []string{configured, config.DefaultSocket(), "/run/pairing/pairing.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		out = append(out, filepath.Join(d, "pairing.sock"))
	}
	out = append(out, filepath.Join(os.TempDir(), fmt.Sprintf("pairing-%d", os.Geteuid()), "pairing.sock"))
	if b, err := os.ReadFile(procUnix); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// Num RefCount Protocol Flags Type St Inode Path; flag
			// 00010000 is __SO_ACCEPTCON (listening).
			if len(f) >= 8 && f[3] == "00010000" && strings.HasSuffix(f[7], "pairing.sock") {
				out = append(out, f[7])
			}
		}
	}
	var uniq []string
	for _, s := range out {
		if s != "" && !slices.Contains(uniq, s) && len(uniq) < maxSockets {
			uniq = append(uniq, s)
		}
	}
	return uniq
}

// daemonSearch bounds the search for the daemon, within the step's
// timeout (a hung daemon holds each try for 400 ms).
const daemonSearch = 800 * time.Millisecond

// maxSockets bounds the control sockets the daemon step asks.
const maxSockets = 8

func gatherDaemon(ctx context.Context, e *env, _ Facts) Facts {
	out := &DaemonFacts{Socket: e.cfg.Socket}
	ctx, cancel := context.WithTimeout(ctx, daemonSearch)
	defer cancel()
	for _, path := range socketCandidates(e.cfg.Socket) {
		if ctx.Err() != nil {
			break
		}
		if path != e.cfg.Socket {
			if _, err := os.Stat(path); err != nil {
				continue
			}
		}
		c, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
		st, err := control.NewClient(path).Status(c)
		cancel()
		try := SocketTry{Path: path, Answer: "status"}
		switch {
		case err == nil:
			out.Tried, out.FoundAt, out.Status = append(out.Tried, try), path, st
			return Facts{Daemon: out}
		case errors.Is(err, control.ErrNotAllowed):
			try.Answer, out.NotAllowed = "not allowed", true
		case errors.Is(err, control.ErrNoDaemon):
			try.Answer = "no daemon"
		default:
			try.Answer = err.Error()
		}
		out.Tried = append(out.Tried, try)
		if path == e.cfg.Socket {
			out.Error = err.Error()
		}
	}
	return Facts{Daemon: out}
}

// ReachedFacts is the reached-from-outside step's record: the daemon's
// addresses and their proofs (who reached them, who could not), read
// again after the other steps had time to make peers probe.
type ReachedFacts struct {
	Port      int               `json:"port"`
	Addresses []control.Address `json:"addresses"`
	Error     string            `json:"error,omitempty"`
	Skipped   string            `json:"skipped,omitempty"`
}

func gatherReached(ctx context.Context, e *env, in Facts) Facts {
	out := &ReachedFacts{}
	if in.Daemon == nil || in.Daemon.FoundAt == "" {
		out.Skipped = "the daemon is not running: only it records which addresses other hosts reached"
		return Facts{Reached: out}
	}
	c, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
	st, err := control.NewClient(in.Daemon.FoundAt).Status(c)
	cancel()
	if err != nil {
		out.Error = err.Error()
		return Facts{Reached: out}
	}
	out.Port, out.Addresses = st.Port, st.Addresses
	return Facts{Reached: out}
}

// PairedFacts is the paired-peers step's record: each paired device and
// whether it answers TLS, with its own key, at its last address.
type PairedFacts struct {
	// From is where the list came from: daemon or store.
	From    string        `json:"from"`
	Devices []PairedProbe `json:"devices"`
}

// PairedProbe is one paired device.
type PairedProbe struct {
	Name      string       `json:"name"`
	ID        string       `json:"id"`
	Addresses []netip.Addr `json:"addresses"`
	Port      uint16       `json:"port"`
	Reachable bool         `json:"reachable"`
	// At is the address that answered.
	At    netip.Addr   `json:"at,omitzero"`
	Dials []DialResult `json:"dials,omitempty"`
	Error string       `json:"error,omitempty"`
}

// pairedWait bounds the probes of all paired devices together.
const pairedWait = 1200 * time.Millisecond

// maxPairedProbes bounds the paired devices the step dials.
const maxPairedProbes = 16

func gatherPaired(ctx context.Context, e *env, in Facts) Facts {
	out := &PairedFacts{From: "store"}
	var list []control.Paired
	if in.Daemon != nil && in.Daemon.FoundAt != "" {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		ps, err := control.NewClient(in.Daemon.FoundAt).Peers(c)
		cancel()
		if err == nil {
			list, out.From = ps, "daemon"
		}
	}
	if out.From == "store" {
		stored, _ := pairing.ReadStore(e.cfg.StateDir)
		for _, p := range stored {
			// What probePaired reads, in the daemon's answer's form.
			addrs := p.Addresses
			if addrs == nil {
				addrs = []netip.Addr{}
			}
			list = append(list, control.Paired{ID: p.ID, Name: p.Name, Fingerprint: p.Fingerprint.String(), Kind: p.Kind,
				Addresses: addrs, Port: p.Port})
		}
	}
	// Each device's dials and handshakes end within pairedWait, so the
	// step returns its facts before its own deadline.
	ctx, cancel := context.WithTimeout(ctx, pairedWait)
	defer cancel()
	if len(list) > maxPairedProbes {
		list = list[:maxPairedProbes]
	}
	out.Devices = make([]PairedProbe, len(list))
	done := make(chan struct{}, len(list))
	for i, p := range list {
		go func() {
			out.Devices[i] = probePaired(ctx, p)
			done <- struct{}{}
		}()
	}
	for range list {
		<-done
	}
	return Facts{Paired: out}
}

// probePaired checks that the paired device answers TLS at one of its
// last addresses with its own certificate.
func probePaired(ctx context.Context, p control.Paired) PairedProbe {
	x := PairedProbe{Name: p.Name, ID: p.ID, Addresses: p.Addresses, Port: p.Port}
	fp, err := ident.Parse(p.Fingerprint)
	if err != nil {
		x.Error = err.Error()
		return x
	}
	if p.Port == 0 || len(p.Addresses) == 0 {
		x.Error = "no last address known"
		return x
	}
	var errs []string
	for _, a := range p.Addresses {
		target := netip.AddrPortFrom(a, p.Port)
		conn, d := dialTCP(ctx, target, 700*time.Millisecond)
		x.Dials = append(x.Dials, d)
		if conn == nil {
			errs = append(errs, fmt.Sprintf("%s: %s", target, d.Error))
			continue
		}
		tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || ident.Of(cs.PeerCertificates[0].Raw) != fp {
					return errors.New("another device answers there")
				}
				return nil
			}})
		hctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		err := tc.HandshakeContext(hctx)
		cancel()
		tc.Close()
		if err == nil {
			x.Reachable, x.At = true, a
			return x
		}
		errs = append(errs, fmt.Sprintf("%s: %v", target, err))
	}
	x.Error = strings.Join(errs, "; ")
	return x
}

// ClockFacts is the clock step's record.
type ClockFacts struct {
	Now time.Time `json:"now"`
}

func gatherClock(ctx context.Context, e *env, _ Facts) Facts {
	return Facts{Clock: &ClockFacts{Now: e.cfg.Now()}}
}
