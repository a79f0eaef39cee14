package termsafe

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// attacks are strings that act on a terminal or read other than they are.
var attacks = []string{
	"\x1b]52;c;cm0gLXJmIH4K\x07",   // OSC 52: set the clipboard
	"\x1b[2J\x1b[H",                // CSI 2J: clear the screen
	"\x1b]0;you were hacked\x1b\\", // OSC 0: window title
	"\u009b2J",                     // C1 CSI
	"invoice\u202efdp.exe",         // right-to-left override
	"a\u2066b\u2069", "zero\u200bwidth", "\ufeffbom", "del\x7f", "nul\x00", "line\u2028sep",
	"tag\U000E0041", "bad\xffutf8", "\xc2\x9b2J", // a C1 CSI as UTF-8 bytes
}

func TestCheckNamesTheCharacter(t *testing.T) {
	for _, c := range []struct{ s, want string }{
		{"invoice\u202efdp.exe", "U+202E (right-to-left override) at byte 7"},
		{"a\u2066b", "U+2066 (left-to-right isolate)"},
		{"x\u200b", "U+200B (zero width space)"},
		{"\ufeffx", "U+FEFF"},
		{"\x1b[2J", "U+001B (escape)"},
		{"\u0600x", "U+0600 (a format character)"},
		{"a\x85", "not UTF-8"},
	} {
		err := Check(c.s)
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%q) = %v, want %q", c.s, err, c.want)
		}
	}
	for _, ok := range []string{"", "Anna's phone", "Zoë 📱", "日本語のノート", "עברית", "a\\b", "\ufffd"} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"\x1b]52;c;eA==\x07":    `\x1b]52;c;eA==\x07`,
		"\u009b2J":              `\u009b2J`,
		"invoice\u202efdp.exe":  `invoice\u202efdp.exe`,
		"two\nlines\tand\r":     `two\nlines\tand\r`,
		"bad\xffbyte":           `bad\xffbyte`,
		"tag\U000E0041":         `tag\U000e0041`,
		"plain text, a\\b, Zoë": "plain text, a\\b, Zoë",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
	for _, s := range attacks {
		if e := Escape(s); Check(e) != nil {
			t.Errorf("Escape(%q) = %q still unsafe", s, e)
		}
	}
	if got := Cut("\x1b\x1b\x1b", 9); got != `\x1b\x1b` {
		t.Errorf("Cut = %q", got)
	}
}

func TestJSON(t *testing.T) {
	for _, s := range attacks {
		if !utf8.ValidString(s) {
			continue // encoding/json makes it U+FFFD
		}
		raw, _ := json.MarshalIndent(map[string]string{"text": s}, "", "  ")
		safe := JSON(raw)
		var back map[string]string
		if err := json.Unmarshal(safe, &back); err != nil || back["text"] != s {
			t.Errorf("JSON(%q): %s → %q, %v", s, safe, back["text"], err)
		}
		for _, r := range string(safe) {
			if r != '\n' && Unsafe(r) {
				t.Errorf("JSON(%q) = %s holds %U", s, safe, r)
			}
		}
	}
}

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := Writer{W: &b, Color: true}
	w.Write([]byte("\x1b[32m✓\x1b[0m step\tname \x1b]0;title\x07\n"))
	if got, want := b.String(), "\x1b[32m✓\x1b[0m step\tname \\x1b]0;title\\x07\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	b.Reset()
	Writer{W: &b}.Write([]byte("\x1b[32m✓"))
	if got := b.String(); got != `\x1b[32m✓` {
		t.Errorf("without colour: %q", got)
	}
}

// FuzzName: the name rule and its escape agree. What Check accepts is
// valid UTF-8 without an unsafe character and Escape leaves it as it is;
// whatever Escape returns, Check accepts; neither panics.
func FuzzName(f *testing.F) {
	for _, s := range attacks {
		f.Add(s)
	}
	f.Add("Anna's phone")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if err := Check(e); err != nil {
			t.Fatalf("Escape(%q) = %q: %v", s, e, err)
		}
		if Check(s) == nil {
			if e != s || !utf8.ValidString(s) {
				t.Fatalf("accepted %q but Escape gives %q", s, e)
			}
			for _, r := range s {
				if Unsafe(r) {
					t.Fatalf("accepted %q holding %U", s, r)
				}
			}
		} else if e == s {
			t.Fatalf("refused %q but Escape leaves it", s)
		}
		if c := Cut(s, 63); len(c) > 63 || Check(c) != nil {
			t.Fatalf("Cut(%q) = %q", s, c)
		}
	})
}
