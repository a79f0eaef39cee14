package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/daemon"
)

// completePeer completes a paired device's ID or name: from the running
// daemon (its --socket), else from the state directory (--state-dir)
// when this user may read it. It never blocks a shell for long.
func completePeer(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	socket, _ := c.Flags().GetString("socket")
	if socket == "" {
		socket = config.DefaultSocket()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	peers, err := control.NewClient(socket).Peers(ctx)
	if err != nil {
		dir, _ := c.Flags().GetString("state-dir")
		if dir == "" {
			dir = config.DefaultStateDir()
		}
		stored, _ := pairing.ReadStore(dir)
		for _, p := range stored {
			peers = append(peers, daemon.PairedView(p, false))
		}
	}
	var out []string
	for _, p := range peers {
		if strings.HasPrefix(strings.ToLower(p.ID), strings.ToLower(toComplete)) {
			out = append(out, fmt.Sprintf("%s\t%s", p.ID, esc(p.Name)))
		}
		// A name with control or format characters (a store of an older
		// version) is offered by its ID only.
		// Names match as 'pairing send' takes them: case ignored.
		if p.Name != "" && !strings.ContainsAny(p.Name, "\t\n") && esc(p.Name) == p.Name && strings.HasPrefix(strings.ToLower(p.Name), strings.ToLower(toComplete)) {
			out = append(out, fmt.Sprintf("%s\t%s", p.Name, p.ID))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeLevels completes --log-level.
var completeLevels = cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp)
