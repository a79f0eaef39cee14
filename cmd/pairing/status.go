package main

import (
	"context"
	"fmt"
	"github.com/spf13/cobra"
	"text/tabwriter"
	"time"

	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
)

func statusCommand(o streams) *cobra.Command {
	c, fs := newCommand("status", "show what the running daemon is doing", "Show what the running daemon is doing: its identity, port, confirmed addresses and the devices it sees", 0, 0)
	stdout := o.stdout
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	c.RunE = func(_ *cobra.Command, args []string) error {
		st, err := control.NewClient(*socket).Status(context.Background())
		if err != nil {
			return daemonError(err)
		}
		if *asJSON {
			return writeJSON(stdout, st)
		}
		fmt.Fprintf(stdout, "device   %s (%s)\nversion  %s, up %s\nstate    %s\nport     %d\n", esc(st.Name), esc(st.ID), esc(st.Version), time.Duration(st.UptimeS)*time.Second, esc(st.StateDir), st.Port)
		if st.Window.Open {
			fmt.Fprintf(stdout, "window   open, closes in %s\n", time.Until(st.Window.Expires).Round(time.Second))
		} else if st.Window.Closed != "" {
			fmt.Fprintf(stdout, "window   closed early: %s ('pairing qr' opens one)\n", esc(st.Window.Closed))
		} else {
			fmt.Fprintln(stdout, "window   closed ('pairing qr' opens one)")
		}
		fmt.Fprintf(stdout, "paired   %d, %d online now\n", st.Paired, st.PairedOnline)
		b := st.Beacon
		var dropped uint64
		for _, n := range b.Dropped {
			dropped += n
		}
		fmt.Fprintf(stdout, "beacon   %d in, %d out, %d dropped, %d rate limited, %d new devices refused, joined %s\n", b.Received, b.Sent, dropped, b.RateLimited, b.PeersRefused, escAll(b.Joined))
		if n := st.WebRTC.DroppedPackets; n > 0 {
			fmt.Fprintf(stdout, "webrtc   %d packets dropped in full buffers (a transfer faster than the receiver)\n", n)
		}
		if len(st.Addresses) == 0 {
			fmt.Fprintln(stdout, "addresses: none confirmed yet")
		} else {
			fmt.Fprintf(stdout, "addresses (changed %s):\n", st.AddressesChanged.Format(time.RFC3339))
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			for _, a := range st.Addresses {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", escAll(a.IP), orDash(a.Interface), esc(a.Stage), esc(a.RankReason))
			}
			tw.Flush()
		}
		if st.PeersOmitted > 0 {
			fmt.Fprintf(stdout, "peers on the LAN: %d (%d more not listed)\n", len(st.Peers), st.PeersOmitted)
		} else {
			fmt.Fprintf(stdout, "peers on the LAN: %d\n", len(st.Peers))
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, p := range st.Peers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\tport %d\tseen %s ago\n", esc(p.ID), orDash(p.Name), escAll(p.Addresses), p.Port, time.Since(p.LastSeen).Round(time.Second))
		}
		return tw.Flush()
	}
	return c
}
