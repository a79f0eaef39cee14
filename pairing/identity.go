package pairing

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/lanpairing/pairing/internal/atomicfile"
	"github.com/lanpairing/pairing/internal/ident"
)

// Files of the identity in the state directory.
const (
	KeyFile  = "identity.key"
	CertFile = "identity.crt"
)

// certLifetime is long: identity is the fingerprint, not the validity
// period, and a device must not change identity when a date passes.
const certLifetime = 100 * 365 * 24 * time.Hour

// Identity is a device's persistent key and self-signed certificate.
type Identity struct {
	Key         *ecdsa.PrivateKey
	Cert        *x509.Certificate
	Fingerprint ident.Fingerprint
}

// ID is the short human form of the fingerprint.
func (id *Identity) ID() string { return id.Fingerprint.ID() }

// TLSCertificate is the identity for crypto/tls.
func (id *Identity) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{id.Cert.Raw}, PrivateKey: id.Key, Leaf: id.Cert}
}

// LoadIdentity reads the identity from dir, creating it on first start. A
// key or certificate that exists but cannot be read or parsed is an error
// naming the file; it is never silently replaced.
func LoadIdentity(dir string) (*Identity, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	keyPEM, kerr := os.ReadFile(keyPath)
	certPEM, cerr := os.ReadFile(certPath)
	switch {
	case errors.Is(kerr, fs.ErrNotExist) && errors.Is(cerr, fs.ErrNotExist):
		return createIdentity(keyPath, certPath)
	case kerr != nil:
		return nil, fmt.Errorf("read identity key %s: %w", keyPath, kerr)
	case cerr != nil:
		return nil, fmt.Errorf("read identity certificate %s: %w", certPath, cerr)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity key %s is corrupt: %w (move it away to create a new identity; paired devices will then need to pair again)", keyPath, err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("identity certificate %s is corrupt: %w", certPath, err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("identity certificate %s does not match key %s", certPath, keyPath)
	}
	return &Identity{Key: key, Cert: cert, Fingerprint: ident.Of(cert.Raw)}, nil
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return ec, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func createIdentity(keyPath, certPath string) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "pairing"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	// Key first: a crash between the two leaves a key without certificate,
	// which the next start reports instead of replacing.
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, err
	}
	return &Identity{Key: key, Cert: cert, Fingerprint: ident.Of(der)}, nil
}

// writeFileAtomic writes b to path with mode 0600 (atomicfile.Write).
func writeFileAtomic(path string, b []byte) error { return atomicfile.Write(path, b) }

// ReadFingerprint returns the fingerprint of the identity in dir without
// creating one; ok is false when there is none (or it cannot be read).
func ReadFingerprint(dir string) (fp ident.Fingerprint, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return fp, false
	}
	cert, err := parseCert(b)
	if err != nil {
		return fp, false
	}
	return ident.Of(cert.Raw), true
}
