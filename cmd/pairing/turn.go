package main

import (
	"fmt"
	"github.com/spf13/cobra"
	"time"

	"github.com/lanpairing/pairing/internal/turncred"
)

func turnCommand(o streams) *cobra.Command {
	c, fs := newCommand("turn-credentials", "mint TURN REST credentials (coturn use-auth-secret)", "Mint TURN REST credentials as coturn's use-auth-secret expects: username <expiry>:<user>, password base64(HMAC-SHA1(secret, username))", 0, 0)
	stdout := o.stdout
	secret := fs.String("secret", "", "the TURN server's shared secret (coturn static-auth-secret)")
	user := fs.String("user", "", "the user name to embed")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the credentials stay valid")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	c.RunE = func(_ *cobra.Command, args []string) error {
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
		fmt.Fprintf(stdout, "username %s\npassword %s\nexpires  %s\n", esc(u), p, now.Add(*ttl).UTC().Format(time.RFC3339))
		return nil
	}
	return c
}
