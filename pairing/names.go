package pairing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lanpairing/pairing/internal/termsafe"
)

// The name rules of the protocol: a sender checks a folder's paths with
// them before it offers one (tree.go), a receiver before it takes one
// (the inbox, the sessions).

// ErrBadFileName: a name or path a receiver would not take.
var ErrBadFileName = errors.New("refused: not a plain file name")

// MaxPathDepth bounds the components of a path in a folder sent: deeper
// than photo, music or source trees go, shallow enough for any file
// system's path length with 200-byte names.
const MaxPathDepth = 16

// maxNameLen bounds a file name (one path component).
const maxNameLen = 200

// CheckFileName accepts only a plain file name: not empty, at most 200
// bytes, no directory or parent reference, not hidden (a leading dot:
// the inbox's own files are in such a directory), and no control or
// format character (termsafe's rule, the one for device names too: a
// right-to-left override makes "invoice<U+202E>fdp.exe" read as
// "invoiceexe.pdf"). The error says which rule the name broke.
func CheckFileName(name string) error {
	var why string
	switch {
	case name == "" || name == "." || name == "..":
		why = "not a file name"
	case len(name) > maxNameLen:
		why = fmt.Sprintf("longer than %d bytes", maxNameLen)
	case strings.ContainsAny(name, `/\`):
		why = "names a directory"
	case strings.HasPrefix(name, "."):
		why = "hidden (starts with a dot)"
	default:
		err := termsafe.Check(name)
		if err == nil {
			return nil
		}
		why = err.Error()
	}
	return fmt.Errorf("%w: %q %s", ErrBadFileName, name, why)
}

// CheckPath accepts a relative path of a file inside a folder sent:
// '/'-separated, not absolute, at most MaxPathDepth components, each one
// a plain file name (CheckFileName: no "..", no ".", no empty or hidden
// component, no control or format character). A plain file name is a
// path of one component.
func CheckPath(rel string) error {
	if strings.HasPrefix(rel, "/") {
		return fmt.Errorf("%w: %q is absolute", ErrBadFileName, rel)
	}
	parts := strings.Split(rel, "/")
	if len(parts) > MaxPathDepth {
		return fmt.Errorf("%w: %q is deeper than %d folders", ErrBadFileName, rel, MaxPathDepth)
	}
	for _, p := range parts {
		if err := CheckFileName(p); err != nil {
			if len(parts) == 1 {
				return err
			}
			return fmt.Errorf("in %q: %w", rel, err)
		}
	}
	return nil
}
