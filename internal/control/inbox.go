package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
)

// InboxFile opens the received file called name (as 'pairing inbox'
// lists it): the way a member of the daemon's group copies a file out of
// a state directory it may not enter.
func (c *Client) InboxFile(ctx context.Context, name string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://daemon"+PathInboxFile+"?"+url.Values{"name": {name}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	hc := *c.http
	hc.Timeout = 0 // a large file takes its time
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.socketError(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var eb ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb) == nil && eb.Error != "" {
			return nil, &Error{Reason: eb.Reason, Message: eb.Error}
		}
		return nil, fmt.Errorf("daemon answered %s", resp.Status)
	}
	return resp.Body, nil
}

// ClearInbox deletes the received files the inbox's log names, and the log.
func (c *Client) ClearInbox(ctx context.Context) (*InboxCleared, error) {
	var r InboxCleared
	return &r, c.do(ctx, http.MethodDelete, PathInbox, nil, &r)
}

// CurrentWindow is OpenWindow for the window already open: it never
// opens one, and fails with ReasonWindowClosed when none is open (a live
// view of the code polls it).
func (c *Client) CurrentWindow(ctx context.Context, link bool, host netip.Addr) (*Window, error) {
	q := url.Values{"current": {"1"}}
	if link {
		q.Set("link", "1")
	}
	if host.IsValid() {
		q.Set("address", host.String())
	}
	var w Window
	return &w, c.do(ctx, http.MethodPost, PathWindow+"?"+q.Encode(), nil, &w)
}
