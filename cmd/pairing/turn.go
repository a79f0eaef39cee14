package main

import (
	"fmt"
	"io"
	"time"

	"github.com/lanpairing/pairing/internal/turncred"
)

func runTURNCredentials(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("turn-credentials", "--secret S --user U [--ttl D] [--json]", "Mint TURN REST credentials as coturn's use-auth-secret expects: username <expiry>:<user>, password base64(HMAC-SHA1(secret, username))")
	secret := fs.String("secret", "", "the TURN server's shared secret (coturn static-auth-secret)")
	user := fs.String("user", "", "the user name to embed")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the credentials stay valid")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, 0, stdout); err != nil {
		return err
	}
	switch {
	case *secret == "":
		return usageError{"--secret is required"}
	case *user == "":
		return usageError{"--user is required"}
	case *ttl <= 0:
		return usageError{"--ttl must be positive"}
	}
	now := time.Now()
	u, p := turncred.Mint(*secret, *user, *ttl, now)
	if *asJSON {
		return writeJSON(stdout, map[string]any{"username": u, "password": p, "ttl_s": ttl.Seconds(), "expires": now.Add(*ttl).UTC()})
	}
	fmt.Fprintf(stdout, "username %s\npassword %s\nexpires  %s\n", u, p, now.Add(*ttl).UTC().Format(time.RFC3339))
	return nil
}
