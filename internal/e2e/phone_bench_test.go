package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
)

// TestBenchPhoneBigFile prints `bench browser_big_file_mb N MB`: the peak
// growth of the resident memory of all of Chromium's processes while
// its page receives a 1.5 GB file from the device (target: at most 300
// MB). Like TestBenchFigures it runs only with PAIRING_BENCH=1; it can
// also be called from there as a subtest (benchBrowserBigFile).
func TestBenchPhoneBigFile(t *testing.T) {
	if os.Getenv("PAIRING_BENCH") != "1" {
		t.Skip("set PAIRING_BENCH=1 (make bench) to measure")
	}
	lantest.RequireRoot(t)
	requireChromium(t)
	serveLogLevel = "info"
	t.Cleanup(func() { serveLogLevel = "debug" })
	benchBrowserBigFile(t, lantest.BuildPairing(t, false))
}

// browserBigFileMB is the bench's file: the size people send to phones
// (a video), past what a page could hold twice.
const browserBigFileMB = 1536

func benchBrowserBigFile(t *testing.T, bin string) {
	conf := filepath.Join(t.TempDir(), "pairing.conf")
	os.WriteFile(conf, []byte("max-file-mb = 4096\nmax-inbox-mb = 8192\n"), 0o644)
	a, b := twoHostsWith(t, bin, "--config", conf)
	file, sum := randomFile(t, "video.bin", browserBigFileMB<<20)
	out := runLong(t, b.Host, "TestHelperPhoneLife", 20*time.Minute, helperEnv(a, a.qr().URL, t.TempDir(), "PAIR_NAME=bench", "PAIR_PEER=bench", "PAIR_RECV_FILE="+file)...)
	if between(out, "PAGE_SHA<", ">") != sum {
		t.Fatalf("the page's SHA-256 is not the file's:\n%s", out)
	}
	growth, err := strconv.ParseFloat(between(out, "GROWTH_MB<", ">"), 64)
	if err != nil {
		t.Fatalf("no memory figure:\n%s", out)
	}
	fmt.Printf("bench browser_big_file_mb %.2f MB\n", growth)
	t.Logf("browser_big_file_mb: %.0f MB growth over a %d MB file (baseline %s MB)", growth, browserBigFileMB, between(out, "BASE_MB<", ">"))
}
