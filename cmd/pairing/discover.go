package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/termsafe"
	"github.com/lanpairing/pairing/pairing"
)

func discoverCommand(o streams) *cobra.Command {
	c, fs := newCommand("discover", "list devices on the LAN that answer a discovery query", "Ask the LAN by beacon and mDNS on every interface and list the devices that answer, with the addresses they have and the address they see us at", 0, 0)
	stdout := o.stdout
	timeout := fs.DurationP("timeout", "t", 2*time.Second, "how long to wait for answers")
	first := fs.Bool("first", false, "return as soon as one device answered")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	stateDir := fs.String("state-dir", config.DefaultStateDir(), "state directory of this device's daemon, whose own answer is left out")
	noMDNS := fs.Bool("no-mdns", false, "ask by beacon only, not by mDNS")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if *timeout <= 0 {
			return usageError{"--timeout must be positive"}
		}
		opt := discovery.DiscoverOptions{First: *first, NoMDNS: *noMDNS}
		opt.Exclude, _ = pairing.ReadFingerprint(*stateDir)
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		start := time.Now()
		peers, err := discovery.Discover(ctx, beacon.Config{}, opt)
		if err != nil {
			return hintError{fmt.Errorf("discovery query: %w", err), "no interface can send multicast; check 'ip link' and run 'pairing diag'"}
		}
		if peers == nil {
			peers = []discovery.Peer{}
		}
		if *asJSON {
			out := struct {
				Peers      []discovery.Peer `json:"peers"`
				DurationMS float64          `json:"duration_ms"`
			}{peers, float64(time.Since(start).Microseconds()) / 1000}
			if err := writeJSON(stdout, out); err != nil {
				return err
			}
		} else if len(peers) > 0 {
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tADDRESSES\tPORT\tSEEN AS\tSOURCE")
			for _, p := range peers {
				var addrs []string
				for _, a := range p.Addresses {
					addrs = append(addrs, esc(a.String()))
				}
				seen := "-"
				if p.SeenAs.IsValid() {
					seen = esc(p.SeenAs.String())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", esc(p.ID), orDash(p.Name), strings.Join(addrs, ","), p.Port, seen, esc(strings.Join(p.Sources, "+")))
			}
			tw.Flush()
		}
		if len(peers) == 0 {
			return hintError{fmt.Errorf("no device answered within %s", *timeout),
				"check that 'pairing serve' runs on the other device; if it does, this network filters multicast (AP/client isolation or IGMP snooping): pair with the QR code, which carries the address, and run 'pairing diag'"}
		}
		return nil
	}
	return c
}

// writeJSON prints v as indented JSON: exact (a decoder gets every
// string as it came), with the characters encoding/json leaves raw that a
// terminal would act on (DEL, C1, format characters) as \u escapes
// (termsafe.JSON).
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(termsafe.JSON(b), '\n'))
	return err
}
