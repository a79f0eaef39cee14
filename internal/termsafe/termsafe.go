// Package termsafe is the one rule for characters that outside text (a
// device name, a file name, a text a paired device sent) may not carry
// as they are: control characters, which a terminal obeys (clear the
// screen, set the clipboard, set the window title), and Unicode format
// characters, which make text read other than it is (a right-to-left
// override turns "invoice<U+202E>fdp.exe" into "invoiceexe.pdf"). Names
// are refused with Check; text shown on a terminal goes through Escape.
package termsafe

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnsafe: a name holds a character that Unsafe refuses, or is not
// valid UTF-8.
var ErrUnsafe = errors.New("contains a character that is not allowed")

// Unsafe reports whether r may not reach a terminal or a name as it is:
// the control characters (C0, DEL, C1 U+0080–U+009F: category Cc), the
// format characters (category Cf: bidi embeddings, overrides, isolates
// and marks, zero-width spaces and joiners, the byte order mark, tag
// characters, the soft hyphen, …), the line and paragraph separators
// (U+2028, U+2029).
func Unsafe(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) ||
		(r > 0x9f && (unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)))
}

// names of the characters people meet in attacks, for error messages.
var names = map[rune]string{
	0x1b: "escape", 0x7f: "delete", 0x9b: "control sequence introducer",
	0x061c: "arabic letter mark", 0x00ad: "soft hyphen",
	0x200b: "zero width space", 0x200c: "zero width non-joiner", 0x200d: "zero width joiner",
	0x200e: "left-to-right mark", 0x200f: "right-to-left mark",
	0x202a: "left-to-right embedding", 0x202b: "right-to-left embedding", 0x202c: "pop directional formatting",
	0x202d: "left-to-right override", 0x202e: "right-to-left override",
	0x2060: "word joiner", 0x2066: "left-to-right isolate", 0x2067: "right-to-left isolate",
	0x2068: "first strong isolate", 0x2069: "pop directional isolate", 0xfeff: "zero width no-break space (byte order mark)",
	0x2028: "line separator", 0x2029: "paragraph separator",
}

// Describe names r for a person: "U+202E (right-to-left override)".
func Describe(r rune) string {
	name, ok := names[r]
	switch {
	case ok:
	case unicode.Is(unicode.Cc, r):
		name = "a control character"
	case unicode.Is(unicode.Cf, r):
		name = "a format character"
	default:
		return fmt.Sprintf("U+%04X", r)
	}
	return fmt.Sprintf("U+%04X (%s)", r, name)
}

// Check returns nil when s is valid UTF-8 without an Unsafe character;
// else an error wrapping ErrUnsafe that names the first such character
// and where it is.
func Check(s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return fmt.Errorf("%w: byte 0x%02X at byte %d is not UTF-8", ErrUnsafe, s[i], i)
			}
		} else if Unsafe(r) {
			return fmt.Errorf("%w: %s at byte %d", ErrUnsafe, Describe(r), i)
		}
	}
	return nil
}

// Escape returns s with every Unsafe character written as a visible
// escape, so that nothing in it acts on a terminal: \n, \r and \t by
// those names, other bytes below 0x80 (and bytes that are not UTF-8) as
// \xNN, other characters as \uNNNN or \UNNNNNNNN. Everything else, a
// backslash too, stays as it is: the escape makes text safe to show, not
// reversible (--json output is exact). Escape(s) == s when Check(s) is nil.
func Escape(s string) string {
	if Check(s) == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !Unsafe(r):
			b.WriteString(s[i : i+n])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}

// Cut returns Escape(s) cut to at most max bytes, never inside an
// escape or a character: a name from a stranger made safe and short
// enough to pass as a name again.
func Cut(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		e := Escape(s[i : i+n])
		if b.Len()+len(e) > max {
			break
		}
		b.WriteString(e)
		i += n
	}
	return b.String()
}
