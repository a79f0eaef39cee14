package diag

import (
	"fmt"
	"io"
)

var marks = map[string]string{Pass: "✓", Warn: "!", Fail: "✗", Skip: "–"}

var colors = map[string]string{Pass: "\x1b[32m", Warn: "\x1b[33m", Fail: "\x1b[31m", Skip: "\x1b[2m"}

// WriteStep writes one step as the text report shows it: mark, name,
// duration, key finding, and the error and hint under a failing step.
func WriteStep(w io.Writer, s Step, color bool) {
	mark := marks[s.Status]
	if color {
		mark = colors[s.Status] + mark + "\x1b[0m"
	}
	line := s.Summary
	if line == "" || (s.Status != Pass && s.Error != "") {
		line = s.Error
	}
	fmt.Fprintf(w, "%s %-18s %7.0f ms  %s\n", mark, s.Name, s.DurationMS, line)
	if s.Status == Fail || s.Status == Warn {
		if s.Summary != "" && s.Error != "" {
			fmt.Fprintf(w, "    %s\n", s.Error)
		}
		if s.Hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", s.Hint)
		}
	}
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
	fmt.Fprintf(w, "\n%d steps: %d passed, %d warnings, %d failed, %d skipped in %.1f s; %s\n",
		len(r.Steps), n[Pass], n[Warn], n[Fail], n[Skip], r.DurationMS/1000, verdict)
}
