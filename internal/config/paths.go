package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lanpairing/pairing/internal/ident"
)

// DefaultStateDir is $PAIRING_STATE_DIR, else systemd's $STATE_DIRECTORY,
// else /var/lib/pairing for root, else $XDG_STATE_HOME/pairing
// (~/.local/state/pairing).
func DefaultStateDir() string {
	if d := os.Getenv("PAIRING_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	if os.Geteuid() == 0 {
		return "/var/lib/pairing"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "pairing")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "pairing")
}

// serviceSocket is where the systemd service's control socket lives.
const serviceSocket = "/run/pairing/pairing.sock"

// DefaultSocket is $PAIRING_SOCKET, else pairing.sock in systemd's
// $RUNTIME_DIRECTORY, else /run/pairing/pairing.sock for root or when the
// service runs (its group may use it; a user outside the group, who may
// not even look inside /run/pairing, is told so rather than sent to a
// socket of its own), else in $XDG_RUNTIME_DIR, else in /tmp/pairing-UID.
func DefaultSocket() string {
	if s := os.Getenv("PAIRING_SOCKET"); s != "" {
		return s
	}
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" {
		return filepath.Join(strings.Split(d, ":")[0], "pairing.sock")
	}
	if _, err := os.Stat(serviceSocket); os.Geteuid() == 0 || err == nil || errors.Is(err, fs.ErrPermission) {
		return serviceSocket
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "pairing.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("pairing-%d", os.Geteuid()), "pairing.sock")
}

// DefaultName is the host name, cut to what a beacon carries.
func DefaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "pairing device"
	}
	if len(h) > ident.MaxNameLen {
		h = h[:ident.MaxNameLen]
	}
	return h
}

// DefaultConfigPath is $PAIRING_CONFIG, else pairing.conf in systemd's
// $CONFIGURATION_DIRECTORY, else /etc/pairing/pairing.conf for root, else
// $XDG_CONFIG_HOME/pairing/pairing.conf (~/.config/pairing/pairing.conf).
func DefaultConfigPath() string {
	if p := os.Getenv("PAIRING_CONFIG"); p != "" {
		return p
	}
	if d := os.Getenv("CONFIGURATION_DIRECTORY"); d != "" {
		return filepath.Join(strings.Split(d, ":")[0], "pairing.conf")
	}
	if os.Geteuid() == 0 {
		return "/etc/pairing/pairing.conf"
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "pairing", "pairing.conf")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "pairing", "pairing.conf")
}
