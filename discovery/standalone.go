package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lanpairing/pairing/discovery/beacon"
)

// AcquireStandalone runs the acquisition with a temporary listener of its
// own (for `pairing addr`, when no daemon lends its port). Stage 3 queries
// peers with cfg; an anonymous query unless cfg.Fingerprint is set.
func AcquireStandalone(ctx context.Context, cfg beacon.Config, log *slog.Logger) (Result, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return Result{}, fmt.Errorf("temporary listener: %w", err)
	}
	c := &Confirmer{Port: ln.Addr().(*net.TCPAddr).Port}
	mux := http.NewServeMux()
	mux.Handle("GET "+ConfirmPath, c)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Debug("temporary listener", "err", err)
		}
	}()
	a := &Acquirer{Confirmer: c, Peers: BeaconReports(cfg, DefaultReportGrace), Logger: log}
	return a.Acquire(ctx), nil
}
