package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/lantest"
)

// TestManPages: `pairing man DIR` writes a page per command under its
// own name and section (pairing-serve(8), pairing-send(1), …) and
// pairing.conf(5); booleans read --json, not --json[=false]; no page
// per completion shell; each renders without warnings.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if code := run([]string{"man", dir}, os.Stdout, os.Stderr); code != 0 {
		t.Fatalf("pairing man: exit %d", code)
	}
	want := map[string]string{"man1/pairing.1": "PAIRING", "man8/pairing-serve.8": "PAIRING-SERVE", "man1/pairing-send.1": "PAIRING-SEND",
		"man1/pairing-qr.1": "PAIRING-QR", "man1/pairing-inbox.1": "PAIRING-INBOX", "man5/pairing.conf.5": "PAIRING.CONF"}
	for f, title := range want {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		sec := f[strings.LastIndex(f, ".")+1:]
		if !strings.Contains(string(b), ".TH \""+title+"\" \""+sec+"\"") {
			t.Errorf("%s: no .TH %s %s:\n%.300s", f, title, sec, b)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		s := string(b)
		if strings.Contains(s, "[=false]") || strings.Contains(s, "[=true]") || strings.Contains(strings.ToLower(f), "powershell") {
			t.Errorf("%s: a boolean rendered with its value, or a PowerShell page", f)
		}
		if strings.Contains(s, ".TH \"PAIRING\" \"1\"") && !strings.HasSuffix(f, "man1/pairing.1") {
			t.Errorf("%s is headed PAIRING(1)", f)
		}
	}
	serve, _ := os.ReadFile(filepath.Join(dir, "man8/pairing-serve.8"))
	for _, w := range []string{"27280", "5353", "identity.key", "paired.json", "inbox.jsonl", "pairing.sock", "nft", "firewall-cmd", "ufw"} {
		if !strings.Contains(string(serve), w) {
			t.Errorf("pairing-serve(8) does not mention %s", w)
		}
	}
	// Every config key is in pairing.conf(5) and in the example.
	conf, _ := os.ReadFile(filepath.Join(dir, "man5/pairing.conf.5"))
	for _, k := range configKeys(t) {
		if !strings.Contains(string(conf), k) || !strings.Contains(exampleConfig, "\n# "+k+" =") {
			t.Errorf("key %s missing from pairing.conf(5) or the example", k)
		}
	}
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("no man to render with")
	}
	for _, f := range files {
		cmd := exec.Command("man", "--warnings", "-l", f)
		cmd.Env = append(os.Environ(), "MANWIDTH=80")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "NAME") {
			t.Errorf("man -l %s: %v\n%s", f, err, stderr.String())
		}
	}
}

// configKeys are the keys ParseConfig knows, from its own error message.
func configKeys(t *testing.T) []string {
	s := config.DefaultSettings()
	err := config.ParseConfig(strings.NewReader("no-such-key = 1\n"), "x", &s)
	m := regexp.MustCompile(`known: ([a-z, -]+)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("no key list in %v", err)
	}
	return strings.Split(m[1], ", ")
}

// TestExampleConfig: the example config, every key uncommented, is a
// valid config (its defaults are values the daemon takes).
func TestExampleConfig(t *testing.T) {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(exampleConfig))
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if m := regexp.MustCompile(`^# ([a-z-]+) =( .*)?$`).FindStringSubmatch(line); m != nil && !strings.Contains(line, "<") {
			line = strings.TrimPrefix(line, "# ")
			n++
		}
		b.WriteString(line + "\n")
	}
	s := config.DefaultSettings()
	if err := config.ParseConfig(strings.NewReader(b.String()), "pairing.conf.example", &s); err != nil || n < len(configKeys(t))-2 {
		t.Fatalf("example config, %d keys uncommented: %v", n, err)
	}
	if s.Listen != config.DefaultListen || s.PairWindow != config.DefaultPairWindow || !s.MDNS || s.WebRTC.Transfer != "auto" {
		t.Errorf("the example's defaults differ from the daemon's: %+v", s)
	}
}

// TestInstallWithoutGo: `sudo make install` has no go on its PATH: it
// installs the bin/pairing built before, with the example config and the
// man pages in their sections; with neither go nor a built binary it
// says what to do.
func TestInstallWithoutGo(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	tree := t.TempDir()
	// A copy of the tree's Makefile and the files install reads, so the
	// test never touches the worktree's bin/.
	for _, f := range []string{"Makefile", "cmd/pairing/systemd/pairing.service", "cmd/pairing/systemd/60-pairing.conf", "cmd/pairing/systemd/pairing.conf.example"} {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(tree, f)), 0o755)
		os.WriteFile(filepath.Join(tree, f), b, 0o644)
	}
	noGo := "PATH=/usr/bin:/bin"
	if _, err := os.Stat("/usr/bin/go"); err == nil {
		t.Skip("go is in /usr/bin")
	}
	dest := t.TempDir()
	make := func() (string, error) {
		cmd := exec.Command("make", "-C", tree, "install", "DESTDIR="+dest, "UNITDIR=/etc/systemd/system", "PREFIX=/usr/local")
		cmd.Env = append(os.Environ(), noGo)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := make()
	if err == nil || !strings.Contains(out, "run 'make build' as yourself first, then 'sudo make install'") {
		t.Fatalf("install without go nor bin/pairing: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	b, err := os.ReadFile(lantest.BuildPairing(t, false))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "bin/pairing"), b, 0o755)
	if out, err := make(); err != nil || !strings.Contains(out, "as built") {
		t.Fatalf("install of a built binary without go: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/local/bin/pairing", "etc/pairing/pairing.conf.example", "etc/systemd/system/pairing.service",
		"usr/local/share/man/man8/pairing-serve.8", "usr/local/share/man/man5/pairing.conf.5", "usr/local/share/man/man1/pairing-send.1"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/pairing.service"))
	if !strings.Contains(string(unit), "Documentation=man:pairing-serve(8)") {
		t.Errorf("unit without Documentation=:\n%s", unit)
	}
}
