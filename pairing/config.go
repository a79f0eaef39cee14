package pairing

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lanpairing/pairing/discovery/beacon"
)

// Settings are what a config file and the serve flags set. Zero values
// are not defaults: start from DefaultSettings.
type Settings struct {
	Name             string
	Listen           string
	PairWindow       time.Duration
	IgnoreInterfaces []string
	MDNS             bool
	LogLevel         string
	LogFormat        string
	WebRTC           WebRTCSettings
	Inbox            InboxSettings
}

// WebRTCSettings are the ICE servers, their credentials and the
// connection lifetime; a reload applies them to the next connection.
type WebRTCSettings struct {
	STUN         []string
	TURN         []string
	TURNUser     string
	TURNPassword string // static credentials
	TURNSecret   string // or a coturn use-auth-secret to mint them
	// RelayOnly makes WebRTC use TURN relays only.
	RelayOnly bool
	// ConnectionIdle closes a WebRTC connection nothing was sent on.
	ConnectionIdle time.Duration
	// Transfer is the path files take to a paired daemon: auto (direct
	// TLS when it connects, else WebRTC), tls or webrtc.
	Transfer string
}

// Equal reports whether a and b configure the same ICE servers,
// credentials and relay policy (ConnectionIdle aside: it changes no
// connection's path).
func (a WebRTCSettings) Equal(b WebRTCSettings) bool {
	return slices.Equal(a.STUN, b.STUN) && slices.Equal(a.TURN, b.TURN) && a.TURNUser == b.TURNUser &&
		a.TURNPassword == b.TURNPassword && a.TURNSecret == b.TURNSecret && a.RelayOnly == b.RelayOnly
}

// InboxSettings say where received files go ("" = inbox in the state
// dir) and limit them (0 = no limit).
type InboxSettings struct {
	Dir        string
	MaxFileMB  int64
	MaxInboxMB int64
}

// DefaultSettings are the settings without a config file or flags.
func DefaultSettings() Settings {
	return Settings{
		Name:       DefaultName(),
		Listen:     DefaultListen,
		PairWindow: DefaultWindowLifetime,
		MDNS:       true,
		LogLevel:   "info",
		LogFormat:  "text",
		// ConnectionIdle: a minute spares the next send the connection
		// set-up (~10 ms), at the cost of keep-alives while it lasts.
		WebRTC: WebRTCSettings{ConnectionIdle: DefaultConnectionIdle, Transfer: "auto"},
	}
}

// ErrConfig is wrapped by every config error.
var ErrConfig = errors.New("bad config")

// ConfigError names the file, line and key of a bad setting.
type ConfigError struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("config %s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("config %s:%d: %s: %v", e.File, e.Line, e.Key, e.Err)
}

func (e *ConfigError) Unwrap() []error { return []error{ErrConfig, e.Err} }

// maxConfigSize bounds a config file.
const maxConfigSize = 64 << 10

// configKeys are the keys of a config file, each with its parser.
var configKeys = map[string]func(s *Settings, v string) error{
	"name": func(s *Settings, v string) error {
		if err := beacon.ValidName(v); err != nil {
			return err
		}
		s.Name = v
		return nil
	},
	"listen": func(s *Settings, v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q is not host:port (e.g. :41234)", v)
		}
		s.Listen = v
		return nil
	},
	"pair-window":     func(s *Settings, v string) error { return duration(&s.PairWindow, v) },
	"connection-idle": func(s *Settings, v string) error { return duration(&s.WebRTC.ConnectionIdle, v) },
	"ignore-interfaces": func(s *Settings, v string) error {
		s.IgnoreInterfaces = splitList(v)
		return nil
	},
	"mdns": func(s *Settings, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		s.MDNS = b
		return nil
	},
	"stun": func(s *Settings, v string) error { return iceURLs(&s.WebRTC.STUN, v, "stun", "stuns") },
	"turn": func(s *Settings, v string) error { return iceURLs(&s.WebRTC.TURN, v, "turn", "turns") },
	"turn-user": func(s *Settings, v string) error {
		s.WebRTC.TURNUser = v
		return nil
	},
	"turn-password": func(s *Settings, v string) error {
		s.WebRTC.TURNPassword = v
		return nil
	},
	"turn-secret": func(s *Settings, v string) error {
		s.WebRTC.TURNSecret = v
		return nil
	},
	"transfer": func(s *Settings, v string) error {
		if v != "auto" && v != "tls" && v != "webrtc" {
			return fmt.Errorf("%q: want auto, tls or webrtc", v)
		}
		s.WebRTC.Transfer = v
		return nil
	},
	"relay-only": func(s *Settings, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		s.WebRTC.RelayOnly = b
		return nil
	},
	"inbox": func(s *Settings, v string) error {
		if !filepath.IsAbs(v) {
			return fmt.Errorf("%q is not an absolute path", v)
		}
		s.Inbox.Dir = v
		return nil
	},
	"max-file-mb":  func(s *Settings, v string) error { return positive(&s.Inbox.MaxFileMB, v) },
	"max-inbox-mb": func(s *Settings, v string) error { return positive(&s.Inbox.MaxInboxMB, v) },
	"log-level": func(s *Settings, v string) error {
		if !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
			return fmt.Errorf("%q: want debug, info, warn or error", v)
		}
		s.LogLevel = v
		return nil
	},
	"log-format": func(s *Settings, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("%q: want text or json", v)
		}
		s.LogFormat = v
		return nil
	},
}

func duration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration (e.g. 10m)", v)
	}
	*dst = d
	return nil
}

func positive(dst *int64, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("%q is not a positive whole number", v)
	}
	*dst = n
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func iceURLs(dst *[]string, v string, schemes ...string) error {
	var out []string
	for _, f := range splitList(v) {
		u, err := url.Parse(f)
		if err != nil || !slices.Contains(schemes, u.Scheme) || u.Opaque == "" {
			return fmt.Errorf("%q is not a %s: URL (e.g. %s:host:3478)", f, schemes[0], schemes[0])
		}
		out = append(out, f)
	}
	*dst = out
	return nil
}

// ParseConfig applies a config file to s. The format is one `key = value`
// per line; blank lines and lines starting with # are ignored; lists are
// comma separated. An unknown key, a repeated key or a bad value is an
// error naming the file, line and key, and leaves s unchanged.
func ParseConfig(r io.Reader, file string, s *Settings) error {
	next := *s
	seen := map[string]int{}
	sc := bufio.NewScanner(io.LimitReader(r, maxConfigSize+1))
	n, size := 0, 0
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > maxConfigSize {
			return &ConfigError{File: file, Line: n, Err: fmt.Errorf("file larger than %d bytes", maxConfigSize)}
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			// Not echoed: the line may hold a secret typed wrong.
			return &ConfigError{File: file, Line: n, Err: errors.New("want key = value (the line has no '=' or no key)")}
		}
		set := configKeys[k]
		if set == nil {
			return &ConfigError{File: file, Line: n, Key: k, Err: fmt.Errorf("unknown key (known: %s)", strings.Join(knownKeys(), ", "))}
		}
		if prev, dup := seen[k]; dup {
			return &ConfigError{File: file, Line: n, Key: k, Err: fmt.Errorf("set again (first on line %d)", prev)}
		}
		seen[k] = n
		if err := set(&next, v); err != nil {
			return &ConfigError{File: file, Line: n, Key: k, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		return &ConfigError{File: file, Line: n + 1, Err: err}
	}
	*s = next
	return nil
}

func knownKeys() []string {
	var ks []string
	for k := range configKeys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// LoadConfig applies the file at path to s. A missing file is fine unless
// required (a path the user named).
func LoadConfig(path string, required bool, s *Settings) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	defer f.Close()
	return ParseConfig(f, path, s)
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

// SetSetting sets one setting by its config key (for flags that override
// the file).
func SetSetting(s *Settings, key, value string) error {
	set := configKeys[key]
	if set == nil {
		return fmt.Errorf("unknown setting %q", key)
	}
	return set(s, value)
}
