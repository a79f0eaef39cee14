package e2e

// The transfer figures of `make bench`: the direct TLS path, the WebRTC
// data channel, and a reference that does the receiving daemon's work
// with nothing else (TLS 1.3 over TCP, SHA-256, written to a file in the
// receiver's state directory, fsync), all between the same two namespaces
// in one run.

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
)

// xferBench measures a 100 MB file a → b over each path, runs times each,
// and prints the medians and each path's ratio to the reference.
func xferBench(t *testing.T, bin string, runs int) {
	a, b := twoHostsWith(t, bin)
	b.serve()
	if _, stderr, code := a.join(b.qr().URL); code != 0 {
		t.Fatalf("pairing: %s", stderr)
	}
	file := filepath.Join(t.TempDir(), "100mb.bin")
	data := make([]byte, 100<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(file, data, 0o644)
	send := func(path string) float64 {
		res, stderr, code := a.send("b", "--file", file, "--path", path)
		if code != 0 || res.Path != path {
			t.Fatalf("send over %s: %s %+v", path, stderr, res)
		}
		// The reference removes its file too: no run pays for the
		// writeback of the ones before.
		got, _ := filepath.Glob(filepath.Join(b.state, "inbox", "100mb*"))
		for _, f := range got {
			os.Remove(f)
		}
		return float64(res.Bytes) * 8 / 1e6 / (res.DurationMS / 1000)
	}
	var tlsV, rtcV []float64
	for range runs {
		tlsV = append(tlsV, send("tls"))
		rtcV = append(rtcV, send("webrtc"))
	}
	// The reference: a server in b writing into b's state directory.
	srv := b.Start("env", lantest.HelperEnv+"=1", "REF_LISTEN=10.1.0.2:7443", "REF_DIR="+b.state, "REF_N="+strconv.Itoa(runs),
		os.Args[0], "-test.run=^TestHelperRefTLSServer$", "-test.v")
	waitTCP(t, b.Host, 7443)
	out := a.RunTest(t, "TestHelperRefTLSClient", "REF_ADDR=10.1.0.2:7443", "REF_FILE="+file, "REF_N="+strconv.Itoa(runs))
	<-srv.Done()
	var refV []float64
	m := strings.Index(out, "REF<")
	if m < 0 {
		t.Fatalf("no reference figures:\n%s", out)
	}
	for _, f := range strings.Split(out[m+4:m+strings.Index(out[m:], ">")], ",") {
		v, _ := strconv.ParseFloat(f, 64)
		refV = append(refV, v)
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	tl, rt, ref := med(tlsV), med(rtcV), med(refV)
	fmt.Printf("bench xfer_tls_mbps %.0f Mbit/s\n", tl)
	fmt.Printf("bench xfer_webrtc_mbps %.0f Mbit/s\n", rt)
	fmt.Printf("bench xfer_ref_tls_mbps %.0f Mbit/s\n", ref)
	fmt.Printf("bench xfer_tls_ratio %.2f ratio\n", tl/ref)
	fmt.Printf("bench xfer_webrtc_ratio %.2f ratio\n", rt/ref)
	t.Logf("tls %v\nwebrtc %v\nref %v", tlsV, rtcV, refV)
}

func TestHelperRefTLSServer(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("the reference receiver of the transfer benchmark")
	}
	id, err := pairing.LoadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", os.Getenv("REF_LISTEN"), &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.TLSCertificate()}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n, _ := strconv.Atoi(os.Getenv("REF_N"))
	for range n {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.CreateTemp(os.Getenv("REF_DIR"), "ref-*")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(f, h), c); err != nil {
			t.Fatal(err)
		}
		f.Sync()
		f.Close()
		os.Remove(f.Name())
		fmt.Fprintf(c, "%s\n", hex.EncodeToString(h.Sum(nil)))
		c.Close()
	}
}

func TestHelperRefTLSClient(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("the reference sender of the transfer benchmark")
	}
	n, _ := strconv.Atoi(os.Getenv("REF_N"))
	var figures []string
	for range n {
		f, err := os.Open(os.Getenv("REF_FILE"))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		start := time.Now()
		c, err := tls.Dial("tcp", os.Getenv("REF_ADDR"), &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(c, f); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		c.Close()
		f.Close()
		figures = append(figures, fmt.Sprintf("%.0f", float64(fi.Size())*8/1e6/el.Seconds()))
	}
	fmt.Printf("REF<%s>\n", strings.Join(figures, ","))
}

// waitTCP waits until something listens on TCP port in the host.
func waitTCP(t *testing.T, h *lantest.Host, port int) {
	t.Helper()
	want := fmt.Sprintf(":%04X ", port)
	lantest.Eventually(t, 5*time.Second, func() error {
		out, _, err := h.Run("cat", "/proc/net/tcp", "/proc/net/tcp6")
		if err == nil && strings.Contains(out, want) {
			return nil
		}
		return fmt.Errorf("nothing listens on TCP %d in %s", port, h.Name)
	})
}
