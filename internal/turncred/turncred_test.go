package turncred

import (
	"testing"
	"time"
)

// The vector is computed independently: printf '%s' 1700003600:alice |
// openssl dgst -sha1 -hmac s3cret -binary | base64.
func TestMint(t *testing.T) {
	u, p := Mint("s3cret", "alice", time.Hour, time.Unix(1700000000, 0))
	if u != "1700003600:alice" {
		t.Fatalf("username %q", u)
	}
	if p != want {
		t.Fatalf("password %q, want %q", p, want)
	}
}

const want = "YAFdW/YDZewZsR1QSgUk2IrfbRI="
