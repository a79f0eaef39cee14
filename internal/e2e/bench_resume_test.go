package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// resumeBench prints xfer_resume_ratio: a 500 MB file a → b over the
// direct path, cut at half by killing b's daemon, then sent again; the
// figure is the bytes the second send moved (as b counts them) over the
// file's size, the median of runs (target at most 0.55). It runs inside
// TestBenchFigures (PAIRING_BENCH=1).
func resumeBench(t *testing.T, bin string, runs int) {
	const size = 500 << 20
	a, b := twoHostsWith(t, bin)
	bConf := writeConf(t, "connection-idle = 2s\n")
	b.serve("--config", bConf)
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing: %s", stderr)
	}
	file, sum := randomBigFile(t, t.TempDir(), "big.bin", size)
	reportUnit(t, "xfer_resume_ratio", "ratio", runs, func() float64 {
		got, _ := filepath.Glob(filepath.Join(b.state, "inbox", "big*"))
		for _, f := range got {
			os.Remove(f)
		}
		send := startSendTo(t, a, b, file, "tls", size/2)
		b.daemon.Kill()
		select {
		case <-send.Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the send still runs a minute after the receiver died")
		}
		b.serve("--config", bConf)
		res, stderr, code := a.send("b", "--file", file, "--path", "tls")
		if code != 0 || res.SHA256 != sum {
			t.Fatalf("second send: exit %d %+v %s", code, res, stderr)
		}
		_, moved, err := b.received("big.bin")
		if err != nil {
			t.Fatal(err)
		}
		return float64(moved) / size
	})
}
