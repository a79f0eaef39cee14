package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lanpairing/pairing/internal/lantest"
)

// TestUnitFile checks the shipped unit with systemd's own tools: verify
// is clean and the sandbox's exposure is at most 2.0.
func TestUnitFile(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze missing (apt-get install systemd; 'make test' does it)")
		}
		t.Skip("needs systemd-analyze")
	}
	unit, err := os.ReadFile("systemd/pairing.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart exists: point it at a built binary.
	bin := lantest.BuildPairing(t, false)
	path := filepath.Join(t.TempDir(), "pairing.service")
	os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/pairing"), []byte(bin)), 0o644)
	// --man=no: the pages of Documentation= are installed with the unit
	// (TestManPages checks them), not on this machine.
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, _ = exec.Command("systemd-analyze", "security", "--offline=true", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for pairing.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", score)
	if score > 2.0 {
		t.Fatalf("exposure %.1f > 2.0:\n%s", score, out)
	}
	for _, want := range []string{"Type=notify", "StateDirectory=pairing", "RuntimeDirectory=pairing", "DynamicUser=yes", "Restart=on-failure", "WatchdogSec=", "CapabilityBoundingSet=\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}

func TestBadConfigExits2(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"name = ok\nbogus = 1\n":      ":2: bogus: unknown key",
		"pair-window = soon\n":        ":1: pair-window: \"soon\" is not a positive duration",
		"mdns = perhaps\n":            ":1: mdns:",
		"listen = nowhere\n":          ":1: listen:",
		"turn = http://example.net\n": ":1: turn:",
		"name\n":                      ":1: want key = value",
	} {
		path := filepath.Join(dir, "bad.conf")
		os.WriteFile(path, []byte(content), 0o644)
		var out, errOut bytes.Buffer
		code := run([]string{"serve", "--config", path, "--state-dir", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "s.sock")}, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), path+want) {
			t.Errorf("config %q: exit %d, stderr %q; want exit 2 naming %q", content, code, errOut.String(), want)
		}
		if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
			t.Fatalf("config %q: the daemon started (state dir created) before failing", content)
		}
	}
}
