package pairing

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityPersists(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint || a.ID() != b.ID() {
		t.Fatalf("identity changed across loads: %s vs %s", a.ID(), b.ID())
	}
	for _, f := range []string{KeyFile, CertFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
	if fp, ok := ReadFingerprint(dir); !ok || fp != a.Fingerprint {
		t.Fatalf("ReadFingerprint = %v, %v", fp, ok)
	}
	if a.Cert.NotAfter.Year()-a.Cert.NotBefore.Year() < 50 {
		t.Fatalf("certificate expires %v: a device must keep its identity", a.Cert.NotAfter)
	}
}

func TestIdentityCorruptIsNotReplaced(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadIdentity(dir); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	os.WriteFile(keyPath, []byte("garbage"), 0o600)
	_, err := LoadIdentity(dir)
	if err == nil || !strings.Contains(err.Error(), keyPath) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("LoadIdentity with a corrupt key = %v; want an error naming %s", err, keyPath)
	}
	if b, _ := os.ReadFile(keyPath); string(b) != "garbage" {
		t.Fatal("corrupt key file was replaced")
	}
	// A missing certificate next to a key is an error too, not a new identity.
	dir2 := t.TempDir()
	LoadIdentity(dir2)
	os.Remove(filepath.Join(dir2, CertFile))
	if _, err := LoadIdentity(dir2); err == nil || !strings.Contains(err.Error(), CertFile) {
		t.Fatalf("LoadIdentity without certificate = %v", err)
	}
}

func TestStateDirLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, err := OpenStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
	if _, err := OpenStateDir(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenStateDir = %v, want ErrLocked", err)
	}
	a.Close()
	a.Close()
	b, err := OpenStateDir(dir)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	b.Close()
}

// TestListenKeptPort: the port chosen on the first start is kept for the
// next; when it is taken, a new one is chosen, said, and kept; an explicit
// port is used as it is and not kept.
func TestListenKeptPort(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ln, err := ListenKept(dir, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	first := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ln, err = ListenKept(dir, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.Addr().(*net.TCPAddr).Port; got != first {
		t.Fatalf("port %d after a restart, want the kept %d", got, first)
	}
	// Someone else holds it now (ln stays open).
	ln2, err := ListenKept(dir, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	second := ln2.Addr().(*net.TCPAddr).Port
	ln.Close()
	ln2.Close()
	if second == first || !strings.Contains(logs.String(), "the port kept from the last start is taken") {
		t.Fatalf("taken port: got %d (kept %d), log %q", second, first, logs.String())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, portFile)); strings.TrimSpace(string(b)) != fmt.Sprint(second) {
		t.Fatalf("kept %q, want the new %d", b, second)
	}
	// --listen with a port: used, not kept.
	ln3, err := ListenKept(dir, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	p := ln3.Addr().(*net.TCPAddr).Port
	ln3.Close()
	ln4, err := ListenKept(dir, fmt.Sprintf("127.0.0.1:%d", p+1), log)
	if err == nil {
		ln4.Close()
	}
	if b, _ := os.ReadFile(filepath.Join(dir, portFile)); strings.TrimSpace(string(b)) != fmt.Sprint(p) {
		t.Fatalf("an explicit --listen changed the kept port: %q", b)
	}
	os.WriteFile(filepath.Join(dir, portFile), []byte("garbage"), 0o600)
	if ln5, err := ListenKept(dir, "127.0.0.1:0", log); err != nil {
		t.Fatalf("a corrupt port file: %v", err)
	} else {
		ln5.Close()
	}
}
