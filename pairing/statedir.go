package pairing

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked means another daemon holds the state directory.
var ErrLocked = errors.New("state directory in use by another pairing daemon")

// StateDir is an open, locked state directory.
type StateDir struct {
	Path string
	lock *os.File
}

// OpenStateDir creates dir (mode 0700) if needed and takes its lock, so a
// second daemon on the same directory is refused.
func OpenStateDir(dir string) (*StateDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	return &StateDir{Path: dir, lock: f}, nil
}

// Close releases the lock. It is safe to call twice.
func (s *StateDir) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// portFile keeps the listener's port across restarts: a phone's bookmark
// and its browser origin (scheme, host, port) survive them.
const portFile = "port"

// ListenKept listens on addr. When addr asks for any port (":0", the
// default), it takes the port kept in dir from an earlier start, and keeps
// the one it gets; when that port is taken, it says so and takes a new
// one. An explicit port in addr (--listen) is used as it is and not kept.
func ListenKept(dir, addr string, log *slog.Logger) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if port != "0" {
		return net.Listen("tcp", addr)
	}
	path := filepath.Join(dir, portFile)
	if b, err := os.ReadFile(path); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && p < 65536 {
			ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
			if err == nil {
				return ln, nil
			}
			log.Warn("the port kept from the last start is taken; choosing a new one (phones paired by their page need a new scan)", "port", p, "err", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	got := ln.Addr().(*net.TCPAddr).Port
	if err := writeFileAtomic(path, []byte(strconv.Itoa(got)+"\n")); err != nil {
		log.Warn("cannot keep the listener's port for the next start", "err", err)
	}
	return ln, nil
}
