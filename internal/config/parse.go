package config

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

	"github.com/lanpairing/pairing/internal/ident"
)

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
		if err := ident.ValidName(v); err != nil {
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

// SetSetting sets one setting by its config key (for flags that override
// the file).
func SetSetting(s *Settings, key, value string) error {
	set := configKeys[key]
	if set == nil {
		return fmt.Errorf("unknown setting %q", key)
	}
	return set(s, value)
}
