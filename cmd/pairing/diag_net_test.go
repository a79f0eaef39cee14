package main

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/lanpairing/pairing/diag"
)

// noBlame checks that no finding of rep blames a cause other than those
// the test installed: diag needs positive evidence for every cause.
func noBlame(t *testing.T, rep *diag.Report, installed ...string) {
	t.Helper()
	for _, f := range rep.Findings {
		if f.Cause != "" && !slices.Contains(installed, f.Cause) {
			b, _ := json.MarshalIndent(rep.Findings, "", " ")
			t.Errorf("finding %s blames %s, which this test did not install: %s\n%s", f.ID, f.Cause, f.Text, b)
		}
		if len(f.Facts) == 0 {
			t.Errorf("finding %s names no facts", f.ID)
		}
	}
}
