package pairing

import (
	"errors"
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
