package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	s := DefaultSettings()
	err := ParseConfig(strings.NewReader(`
# the kitchen laptop
name = Kitchen laptop
listen = :41234
pair-window = 3m
ignore-interfaces = docker0, virbr0
mdns = false
stun = stun:stun.example.net:3478
turn = turn:turn.example.net:3478?transport=udp, turns:turn.example.net:5349
turn-user = me
turn-secret = s3cret = yes
log-level = debug
log-format = json
connection-idle = 90s
transfer = webrtc
`), "test.conf", &s)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Name: "Kitchen laptop", Listen: ":41234", PairWindow: 3 * time.Minute,
		IgnoreInterfaces: []string{"docker0", "virbr0"}, MDNS: false,
		WebRTC: WebRTCSettings{
			STUN:     []string{"stun:stun.example.net:3478"},
			TURN:     []string{"turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:5349"},
			TURNUser: "me", TURNSecret: "s3cret = yes", ConnectionIdle: 90 * time.Second, Transfer: "webrtc"},
		LogLevel: "debug", LogFormat: "json"}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"name = ok\nbogus = 1", "test.conf:2: bogus: unknown key"},
		{"pair-window = 10x", "test.conf:1: pair-window: \"10x\" is not a positive duration"},
		{"pair-window = -1m", "test.conf:1: pair-window"},
		{"connection-idle = 0s", "test.conf:1: connection-idle: \"0s\" is not a positive duration"},
		{"transfer = fast", "test.conf:1: transfer: \"fast\": want auto, tls or webrtc"},
		{"\n\nmdns = maybe", "test.conf:3: mdns: \"maybe\" is not true or false"},
		{"listen = 41234", "test.conf:1: listen"},
		{"stun = http://x", "test.conf:1: stun"},
		{"name = a\nname = b", "test.conf:2: name: set again (first on line 1)"},
		{"just words", "test.conf:1: want key = value"},
		{"turn-secret s3cret-typed-wrong", "want key = value"},
		{"name = " + strings.Repeat("n", 64), "test.conf:1: name"},
		{strings.Repeat("# comment\n", 8000), "larger than"},
	} {
		s := DefaultSettings()
		before := s
		err := ParseConfig(strings.NewReader(c.in), "test.conf", &s)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseConfig(%.40q) = %v, want %q", c.in, err, c.want)
		}
		if !reflect.DeepEqual(s, before) {
			t.Errorf("a bad config changed the settings")
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error echoes a secret: %v", err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("name = x\npair-window = 1m\n# c\nstun = stun:a:1")
	f.Add("=\n==\nmdns=1")
	f.Fuzz(func(t *testing.T, in string) {
		s := DefaultSettings()
		if err := ParseConfig(strings.NewReader(in), "f", &s); err == nil {
			if s.PairWindow <= 0 || s.Name == "" {
				t.Fatalf("accepted %q into %+v", in, s)
			}
		}
	})
}

// TestComplete: the unset settings take their defaults, the set ones stay.
func TestComplete(t *testing.T) {
	c := Complete(Settings{}, "/state")
	def := DefaultSettings()
	if c.Name != def.Name || c.Listen != DefaultListen || c.PairWindow != DefaultPairWindow ||
		c.WebRTC.ConnectionIdle != DefaultConnectionIdle || c.Inbox.Dir != "/state/inbox" {
		t.Fatalf("completed: %+v", c)
	}
	set := Settings{Name: "n", Listen: ":1", PairWindow: time.Second, WebRTC: WebRTCSettings{ConnectionIdle: time.Hour}, Inbox: InboxSettings{Dir: "/in"}}
	if c := Complete(set, "/state"); !reflect.DeepEqual(c, set) {
		t.Fatalf("set settings changed: %+v", c)
	}
}
