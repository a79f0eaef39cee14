package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUsage checks the CLI's rules: bad usage exits 2 with one line on
// stderr naming the problem; --help prints to stdout and exits 0.
func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"help"}, 0, "pairing discover", ""},
		{[]string{"frobnicate"}, 2, "", `pairing: unknown command "frobnicate"`},
		{[]string{"discover", "--help"}, 0, "--timeout", ""},
		{[]string{"discover", "--bogus"}, 2, "", "pairing: flag provided but not defined: -bogus"},
		{[]string{"discover", "--timeout", "0s"}, 2, "", "pairing: --timeout must be positive"},
		{[]string{"discover", "extra"}, 2, "", `pairing: unexpected argument "extra"`},
		{[]string{"serve", "--name", strings.Repeat("n", 64)}, 2, "", "pairing: bad --name: name must be 1 to 63 bytes"},
		{[]string{"serve", "--log-format", "xml"}, 2, "", `pairing: bad --log-format: "xml": want text or json`},
		{[]string{"serve", "--pair-window", "-1s"}, 2, "", `pairing: bad --pair-window: "-1s" is not a positive duration`},
		{[]string{"serve", "--config", "/nonexistent/pairing.conf"}, 2, "", "pairing: bad config: open /nonexistent/pairing.conf"},
		{[]string{"status", "--socket", "/nonexistent/pairing.sock"}, 1, "", "pairing: no pairing daemon is running at /nonexistent/pairing.sock; hint: start it"},
	} {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.out) || !strings.Contains(errOut.String(), c.errOut) {
			t.Errorf("pairing %v: exit %d (want %d)\nstdout: %s\nstderr: %s", c.args, code, c.code, out.String(), errOut.String())
		}
	}
}
