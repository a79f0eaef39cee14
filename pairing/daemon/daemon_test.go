package daemon

import (
	"errors"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
)

func TestDaemonInNamespace(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperDaemon"))
}

func TestHelperDaemon(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestDaemonInNamespace")
	}
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	cfg := Config{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "s.sock"), Settings: config.Settings{Name: "helper"}}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Acquired():
	case <-time.After(5 * time.Second):
		t.Fatal("no acquisition within 5 s")
	}
	st := d.Status()
	if len(st.Addresses) == 0 || st.Addresses[0].IP.String() != "10.9.0.1" || st.Port != d.Port() {
		t.Fatalf("status %+v", st)
	}
	// A second daemon on the same state directory is refused and leaves
	// the first untouched.
	cfg2 := cfg
	cfg2.Socket = filepath.Join(dir, "s2.sock")
	if d2, err := Start(cfg2); !errors.Is(err, pairing.ErrLocked) {
		if d2 != nil {
			d2.Close()
		}
		t.Fatalf("second daemon on the same state dir: %v, want pairing.ErrLocked", err)
	}
	port := d.Port()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// Restart: same identity.
	d3, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d3.Identity().Fingerprint != d.Identity().Fingerprint {
		t.Fatal("identity changed across restarts")
	}
	if d3.Port() != port {
		t.Fatalf("port %d after a restart, want the kept %d (a phone's bookmark and origin)", d3.Port(), port)
	}
	d3.Close()
}

// TestWindowToldOnce: `qr --link` on a closed window opens it for a link
// in one change: logged, announced and described once (it was Open and
// then OpenForLink, two changes); asking again changes nothing.
func TestWindowToldOnce(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	t.Log(lantest.RunInHost(t, "TestHelperWindowOnce"))
}

func TestHelperWindowOnce(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestWindowToldOnce")
	}
	var told atomic.Int32
	dir := t.TempDir()
	d, err := Start(Config{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "s.sock"), Settings: config.Settings{Name: "helper"},
		OnWindow: func(_ control.Window, open bool) {
			if open {
				told.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	<-d.Acquired()
	if _, err := d.OpenWindow(true, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if n := told.Load(); n != 1 {
		t.Fatalf("opening a window for a link was told %d times, want 1", n)
	}
	if _, err := d.OpenWindow(true, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if n := told.Load(); n != 1 {
		t.Fatalf("asking for the open window again was told: %d, want 1", n)
	}
}
