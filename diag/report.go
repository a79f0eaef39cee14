package diag

import (
	"fmt"
	"io"
	"strings"

	"github.com/lanpairing/pairing/internal/termsafe"
)

var marks = map[string]string{Pass: "✓", Warn: "!", Fail: "✗", Skip: "–"}

var colors = map[string]string{Pass: "\x1b[32m", Warn: "\x1b[33m", Fail: "\x1b[31m", Skip: "\x1b[2m"}

// nameWidth is the width of the step-name column: the longest name.
var nameWidth = func() int {
	w := 0
	for _, s := range steps {
		w = max(w, len([]rune(s.name)))
	}
	return w
}()

// Printable is how a string that came from elsewhere (a peer's name, an
// error text that quotes one) is printed: the CLI's one rule for outside
// text (control and Unicode format characters escaped), so a name cannot
// move the cursor or forge a line of the report. Every such string in
// the report goes through it.
var Printable = termsafe.Escape

// WriteStep writes one step as the text report shows it: mark, name,
// duration, key facts, and the error and hint under a failing step.
func WriteStep(w io.Writer, s Step, color bool) {
	mark := marks[s.Status]
	if color {
		mark = colors[s.Status] + mark + "\x1b[0m"
	}
	line := s.Summary
	if line == "" {
		line = s.Error
	}
	fmt.Fprintf(w, "%s %-*s %7.0f ms  %s\n", mark, nameWidth, s.Name, s.DurationMS, line)
	if s.Status == Fail || s.Status == Warn {
		if line != s.Error && s.Error != "" {
			fmt.Fprintf(w, "    %s\n", s.Error)
		}
		if s.Hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", s.Hint)
		}
	}
}

// WriteReport writes every step, each with its findings and the facts
// they rest on, then the closing line.
func WriteReport(w io.Writer, r *Report, color bool) {
	for _, s := range r.Steps {
		WriteStep(w, s, color)
		for _, f := range r.Findings {
			if f.Step != s.Name {
				continue
			}
			if f.Text == s.Error && f.Hint == s.Hint && (s.Status == Fail || s.Status == Warn) {
				fmt.Fprintf(w, "    facts: %s\n", strings.Join(f.Facts, ", "))
				continue
			}
			label := "also"
			if f.Severity == SevInfo {
				label = "note"
			}
			fmt.Fprintf(w, "    %s: %s\n", label, f.Text)
			if f.Hint != "" {
				fmt.Fprintf(w, "      hint: %s\n", f.Hint)
			}
			fmt.Fprintf(w, "      facts: %s\n", strings.Join(f.Facts, ", "))
		}
	}
	WriteSummary(w, r)
}

// WriteSummary writes the closing line.
func WriteSummary(w io.Writer, r *Report) {
	n := map[string]int{}
	for _, s := range r.Steps {
		n[s.Status]++
	}
	verdict := "no step failed"
	if !r.OK {
		verdict = "see the hints above"
	}
	fmt.Fprintf(w, "\n%s: %d passed, %s, %d failed, %d skipped in %.1f s; %s\n",
		plural(len(r.Steps), "step", "steps"), n[Pass], plural(n[Warn], "warning", "warnings"), n[Fail], n[Skip], r.DurationMS/1000, verdict)
}
