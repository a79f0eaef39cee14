// Package control is the daemon's control-socket API: JSON over HTTP on a
// Unix socket, shared by the daemon and the pairing commands.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
)

// PathStatus is the status endpoint.
const PathStatus = "/v1/status"

// ErrNoDaemon means nothing listens on the control socket.
var ErrNoDaemon = errors.New("no pairing daemon is running")

// Status is what the running daemon is doing.
type Status struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
	Name        string `json:"name"`
	Port        int    `json:"port"`
	// Addresses are the confirmed own addresses, best first.
	Addresses []discovery.Address `json:"addresses"`
	// Stages are the records of the last acquisition.
	Stages []discovery.Stage `json:"stages"`
	// AddressesChanged is when Addresses last changed.
	AddressesChanged time.Time        `json:"addresses_changed"`
	Peers            []discovery.Peer `json:"peers"`
	Beacon           beacon.Stats     `json:"beacon"`
	Started          time.Time        `json:"started"`
}

// Client talks to a daemon's control socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, http: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	return &st, c.get(ctx, PathStatus, &st)
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://daemon"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w at %s", ErrNoDaemon, c.Socket)
		}
		return fmt.Errorf("control socket %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon answered %s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("daemon sent bad JSON: %w", err)
	}
	return nil
}
