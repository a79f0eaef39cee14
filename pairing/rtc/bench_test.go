package rtc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/pionlog"
)

// fileSink does what a receiving daemon does with a file's bytes (the
// receiver hashes them): write them to a file in dir, then sync.
type fileSink struct{ dir string }

type benchFile struct{ f *os.File }

func (fileSink) Text(ident.Fingerprint, string) error { return nil }
func (s fileSink) File(ident.Fingerprint, Offer) (FileWriter, error) {
	f, err := os.CreateTemp(s.dir, "bench-*")
	return &benchFile{f}, err
}
func (f *benchFile) Write(b []byte) (int, error) { return f.f.Write(b) }
func (f *benchFile) Abort()                      { f.f.Close(); os.Remove(f.f.Name()) }
func (f *benchFile) Suspend()                    { f.Abort() }
func (f *benchFile) Have() (int64, hash.Hash)    { return 0, sha256.New() }
func (f *benchFile) Commit(string) error {
	defer os.Remove(f.f.Name())
	f.f.Sync()
	return f.f.Close()
}

// fileChannel connects two endpoints in process, the receiver writing
// files into a temporary directory, and returns the sender's open channel.
func fileChannel(tb testing.TB) (context.Context, *webrtc.DataChannel) {
	ea, eb, a, b := endpoints(tb)
	sa, sb := connect(tb, ea, eb, a, b, fileSink{tb.TempDir()})
	tb.Cleanup(func() { sa.Close(); sb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	dc, err := sa.Channel(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return ctx, dc
}

// BenchmarkSendFile sends 64 MB over one session on loopback, in process:
// a profile of the data channel's path (go test -bench SendFile
// -cpuprofile). The figures against real TLS are `make bench`'s.
func BenchmarkSendFile(b *testing.B) {
	const size = 64 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	ctx, dc := fileChannel(b)
	b.SetBytes(size)
	drops := pionlog.Dropped()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcs := ms.NumGC
	b.ResetTimer()
	for range b.N {
		if _, err := SendFile(ctx, dc, Offer{Name: "f", Size: size}, bytes.NewReader(data), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size*b.N)*8/1e6/b.Elapsed().Seconds(), "Mbit/s")
	b.ReportMetric(float64(pionlog.Dropped()-drops)/float64(b.N), "drops/op")
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.NumGC-gcs)/float64(b.N), "GCs/op")
}

// BenchmarkParallel sends 64 MB raw (no protocol, SHA-256 at the
// receiver) split over several data channels of one connection, or over
// one channel on each of several connections: does either help?
func BenchmarkParallel(b *testing.B) {
	for _, c := range []struct {
		name               string
		sessions, channels int
	}{{"1x1", 1, 1}, {"1x2", 1, 2}, {"1x4", 1, 4}, {"2x1", 2, 1}, {"3x1", 3, 1}} {
		b.Run(c.name, func(b *testing.B) {
			ea, eb, ia, ib := endpoints(b)
			const size = 64 << 20
			var chans []*webrtc.DataChannel
			n := c.sessions * c.channels
			each := size * b.N / n / chunkSize * chunkSize
			total := int64(each * n)
			done := make(chan struct{})
			var got atomic.Int64
			for range c.sessions {
				sa, sb := connect(b, ea, eb, ia, ib, fileSink{b.TempDir()})
				b.Cleanup(func() { sa.Close(); sb.Close() })
				sb.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
					h := sha256.New()
					dc.OnMessage(func(m webrtc.DataChannelMessage) {
						h.Write(m.Data)
						if got.Add(int64(len(m.Data))) == total {
							close(done)
						}
					})
				})
				for i := range c.channels {
					opened := make(chan struct{})
					dc, err := sa.pc.CreateDataChannel(fmt.Sprintf("raw%d", i), nil)
					if err != nil {
						b.Fatal(err)
					}
					dc.OnOpen(func() { close(opened) })
					<-opened
					chans = append(chans, dc)
				}
			}
			chunk := make([]byte, chunkSize)
			b.SetBytes(total / int64(b.N))
			b.ResetTimer()
			for _, dc := range chans {
				low := make(chan struct{}, 1)
				dc.SetBufferedAmountLowThreshold(lowWater)
				dc.OnBufferedAmountLow(func() {
					select {
					case low <- struct{}{}:
					default:
					}
				})
				go func() {
					for sent := 0; sent < each; sent += len(chunk) {
						for dc.BufferedAmount() > highWater {
							<-low
						}
						if err := dc.Send(chunk); err != nil {
							return
						}
					}
				}()
			}
			<-done
			b.ReportMetric(float64(total)*8/1e6/b.Elapsed().Seconds(), "Mbit/s")
		})
	}
}

func (f *benchFile) OnStop(func()) {}
