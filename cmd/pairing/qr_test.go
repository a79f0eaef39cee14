package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lanpairing/pairing/internal/lantest"
)

const testURL = "http://192.168.1.23:41234/p#v=1&fp=oa5Obkj4XLh6v39mrPklnFJUXvousjpRRdZLq6Vse9A&s=pvHaleBzlu874nMzFQQZ3Q&n=vm"

// The coloured terminal form scans: every cell paints its top module in
// the foreground and its bottom one in the background colour.
func TestQRTextColorScans(t *testing.T) {
	text, err := qrText(testURL, true)
	if err != nil {
		t.Fatal(err)
	}
	cell := regexp.MustCompile(`\x1b\[(\d+);(\d+)m▀`)
	var rows [][]bool
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		var top, bottom []bool
		for _, m := range cell.FindAllStringSubmatch(line, -1) {
			top, bottom = append(top, m[1] == "30"), append(bottom, m[2] == "40")
		}
		rows = append(rows, top, bottom)
	}
	if got := lantest.DecodeModules(t, rows); got != testURL {
		t.Fatalf("terminal QR decodes to %q", got)
	}
}

// The plain form (no colour) scans on a dark terminal: blocks are light.
func TestQRTextPlainScans(t *testing.T) {
	text, err := qrText(testURL, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := lantest.DecodeModules(t, lantest.HalfBlockModules(strings.Split(strings.TrimRight(text, "\n"), "\n"))); got != testURL {
		t.Fatalf("plain QR decodes to %q", got)
	}
}

func TestQRPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := writeQRPNG(testURL, path, 384); err != nil {
		t.Fatal(err)
	}
	// The PNG carries the secret: 0600, and a symlink at the path is
	// replaced, not followed.
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep"), 0o644)
	link := filepath.Join(filepath.Dir(path), "link.png")
	os.Symlink(target, link)
	if err := writeQRPNG(testURL, link, 384); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatal("the symlink's target was overwritten")
	}
	if err := writeQRPNG(testURL, filepath.Join(t.TempDir(), "missing", "qr.png"), 384); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("unwritable path: %v", err)
	}
}

// TestQRTextFitsTerminal: the QR code's URL (without what the page
// fetches itself) for the longest IPv4 host fits an 80×24 terminal with
// three lines to spare, a ULA IPv6 host with one, and both decode.
func TestQRTextFitsTerminal(t *testing.T) {
	fp := strings.Repeat("A", 43)
	for host, spare := range map[string]int{"255.255.255.255:65535": 3, "[fd12:3456:789a:1::1234]:65535": 1} {
		url := "http://" + host + "/p#v=1&fp=" + fp + "&s=" + strings.Repeat("b", 22)
		text, err := qrText(url, false)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		if len(lines)+spare > termRows || len([]rune(lines[0])) > termCols {
			t.Fatalf("%s: %d lines of %d columns do not fit 80×24 with %d lines of text", host, len(lines), len([]rune(lines[0])), spare)
		}
		if got := lantest.DecodeModules(t, lantest.HalfBlockModules(lines)); got != url {
			t.Fatalf("decodes to %q", got)
		}
		t.Logf("%s: %d lines × %d columns", host, len(lines), len([]rune(lines[0])))
	}
}
