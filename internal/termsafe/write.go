package termsafe

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// JSON rewrites the Unsafe characters that encoding/json leaves as they
// are (DEL, C1, format characters, as raw UTF-8 inside strings) in the
// JSON text b as \u escapes: the same values to a decoder, and nothing a
// terminal acts on. Whitespace between values (newlines, indentation)
// stays.
func JSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r < 0x7f || !Unsafe(r) {
			out = append(out, b[i:i+n]...)
		} else if r <= 0xffff {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			r -= 0x10000
			out = fmt.Appendf(out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		}
		i += n
	}
	return out
}

// sgr is a colour sequence (Select Graphic Rendition): ESC [ digits m.
var sgr = regexp.MustCompile(`^\x1b\[[0-9;]{0,16}m`)

// Writer escapes what passes through it to W as Escape does, but for
// newlines and tabs (the layout of a report written line by line) and,
// with Color, the colour sequences a report draws its marks with: for
// output that another package formats and that holds outside strings.
type Writer struct {
	W     io.Writer
	Color bool
}

func (w Writer) Write(p []byte) (int, error) {
	var b strings.Builder
	s := string(p)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == 0x1b && w.Color && sgr.MatchString(s[i:]):
			n = len(sgr.FindString(s[i:]))
			b.WriteString(s[i : i+n])
		default:
			b.WriteString(Escape(s[i : i+n]))
		}
		i += n
	}
	if _, err := io.WriteString(w.W, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
