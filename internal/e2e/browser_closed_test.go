package e2e

import (
	"strings"
	"testing"
)

// TestSendToClosedPage: a browser that is closed sends no goodbye, so
// its page looks open to the daemon until ICE gives up (10 s). A send to
// it right after fails at once, on a ping the page does not answer, not
// when ICE gives up; and it says what to do, not that the network is at
// fault.
func TestSendToClosedPage(t *testing.T) {
	requireChromium(t)
	a, b := twoHosts(t)
	w := a.qr()
	if status := browse(t, b.Host, w.URL, t.TempDir(), ""); !strings.HasPrefix(status, "Paired.") {
		t.Fatalf("page: %q", status)
	}
	// browse closed the browser as a person does.
	_, stderr, code := a.send("test", "hi")
	if code != 1 || !strings.Contains(stderr, "the phone's page is not open") || strings.Contains(stderr, "network") {
		t.Fatalf("send to the closed page: exit %d: %s", code, stderr)
	}
	if strings.Contains(a.daemon.Stderr(), "webrtc: connection failed") {
		t.Fatalf("the send waited until ICE gave up: %s", stderr)
	}
}
