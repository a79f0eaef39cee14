package main

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lanpairing/pairing/pairing"
)

// TestBenchQRRender prints qr_render_ms for `make bench`: a window opened
// to the QR code's terminal text ready (median of 15). The terminal
// renderer is the command's, so the figure is measured here.
func TestBenchQRRender(t *testing.T) {
	if os.Getenv("PAIRING_BENCH") == "" {
		t.Skip("set PAIRING_BENCH=1 (make bench)")
	}
	var ms []float64
	for range 15 {
		start := time.Now()
		w := &pairing.Window{}
		info := w.Open()
		p := pairing.Payload{Host: netip.MustParseAddr("192.168.1.23"), Port: 41234, Secret: info.Secret, Name: "bench",
			Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.23"), netip.MustParseAddr("fd00::23")}}
		if _, err := qrText(p.URL(), true); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		w.Stop()
	}
	slices.Sort(ms)
	fmt.Printf("bench qr_render_ms %.2f ms\n", ms[len(ms)/2])
}
