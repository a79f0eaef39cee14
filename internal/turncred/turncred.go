// Package turncred mints TURN REST credentials, the scheme of coturn's
// use-auth-secret: username "<expiry unix time>:<user>", password
// base64(HMAC-SHA1(shared secret, username)).
package turncred

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"time"
)

// Mint returns credentials for user valid until now+ttl.
func Mint(secret, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = fmt.Sprintf("%d:%s", now.Add(ttl).Unix(), user)
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}
