package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"text/tabwriter"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
)

func addrCommand(o streams) *cobra.Command {
	c, fs := newCommand("addr", "run the staged own-address acquisition and show every stage", "Find which own addresses other devices can reach: the preferred outbound address, then every private interface address, then the addresses peers see us at; each proved by a self-ping with a nonce, and ranked by what the kernel says of its link (tunnels, virtual bridges and links without carrier last)", 0, 0)
	stdout := o.stdout
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	c.RunE = func(_ *cobra.Command, args []string) error {
		res, err := discovery.AcquireStandalone(context.Background(), beacon.Config{}, nil)
		if err != nil {
			return err
		}
		if res.Addresses == nil {
			res.Addresses = []discovery.Address{}
		}
		if *asJSON {
			if err := writeJSON(stdout, res); err != nil {
				return err
			}
		} else {
			printAddr(stdout, res)
		}
		if len(res.Addresses) == 0 {
			return hintError{errors.New("no reachable own address found"),
				"check that an interface is up with an address ('ip addr'), that no firewall drops inbound TCP, and run 'pairing diag'"}
		}
		return nil
	}
	return c
}

var marks = map[string]string{discovery.StatusPass: "✓", discovery.StatusFail: "✗", discovery.StatusSkip: "–", "warn": "!"}

func printAddr(w io.Writer, res discovery.Result) {
	for i, s := range res.Stages {
		fmt.Fprintf(w, "%s stage %d %-9s %-4s %7.1f ms", marks[s.Status], i+1, s.Name, s.Status, s.DurationMS)
		if s.Error != "" && s.Status != discovery.StatusFail {
			fmt.Fprintf(w, "  (%s)", esc(s.Error))
		}
		fmt.Fprintln(w)
		details, _ := s.Details.(map[string]any)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if routes, ok := details["routes"].([]discovery.RouteProbe); ok {
			for _, r := range routes {
				fmt.Fprintf(tw, "    route to %s\t%s\t%s\t%s\n", escAll(r.Target), orDash(r.Source), esc(r.Result), esc(r.Evidence+r.Error))
			}
		}
		if cands, ok := details["candidates"].([]discovery.Candidate); ok {
			for _, c := range cands {
				virt := ""
				if c.Virtual {
					virt = " (virtual)"
				}
				fmt.Fprintf(tw, "    %s\t%s%s\t%s\t%s\n", escAll(c.IP), esc(c.Interface), virt, esc(c.Result), esc(c.Evidence+c.Error))
			}
		}
		if skipped, ok := details["skipped"].([]discovery.Skipped); ok {
			for _, sk := range skipped {
				fmt.Fprintf(tw, "    %s\tskipped: %s\t\t\n", esc(sk.Interface), esc(sk.Reason))
			}
		}
		if reports, ok := details["reports"].([]discovery.PeerCheck); ok {
			for _, r := range reports {
				fmt.Fprintf(tw, "    %s sees us at %s\t%s\t%s\n", esc(r.Peer), escAll(r.SeenAs), esc(r.Result), esc(r.Evidence+r.Error))
			}
		}
		tw.Flush()
		if s.Status == discovery.StatusFail {
			fmt.Fprintf(w, "    error: %s\n", esc(s.Error))
		}
	}
	fmt.Fprintln(w)
	if len(res.Addresses) == 0 {
		fmt.Fprintln(w, "no confirmed address")
		return
	}
	fmt.Fprintln(w, "confirmed addresses, best first:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, a := range res.Addresses {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", escAll(a.IP), orDash(a.Interface), esc(a.Stage), esc(a.RankReason))
	}
	tw.Flush()
	fmt.Fprintln(w, "(a self-ping proves only that this host takes the address; the daemon also records which addresses other hosts reached: pairing status)")
}

// orDash is esc(s), or "-" for an empty s.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return esc(s)
}
