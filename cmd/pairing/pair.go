package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/config"
	"github.com/lanpairing/pairing/internal/control"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/daemon"
)

func qrCommand(o streams) *cobra.Command {
	c, fs := newCommand("qr", "open a pairing window and show its QR code, URL and code", "Open a pairing window on the running daemon and show its QR code, URL, 6-digit code and time left; on another computer, pass the URL to 'pairing join'", 0, 0)
	stdout := o.stdout
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	png := fs.String("png", "", "also write the QR code as a PNG to `FILE`")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	link := fs.BoolP("link", "l", false, "a link without the secret, for sending by chat: the receiver types the code shown here")
	address := fs.StringP("address", "a", "", "the `IP` the QR code leads with (one of the confirmed addresses; default: the best one, see 'pairing status')")
	c.RunE = func(_ *cobra.Command, args []string) error {
		var host netip.Addr
		if *address != "" {
			var err error
			if host, err = netip.ParseAddr(*address); err != nil {
				return usageError{fmt.Sprintf("bad --address %q: not an IP address", *address)}
			}
		}
		w, err := control.NewClient(*socket).OpenWindow(context.Background(), *link, host)
		if control.ReasonOf(err) == control.ReasonNotConfirmed {
			return hintError{err, "'pairing status' lists them"}
		}
		if err != nil {
			return daemonError(err)
		}
		url, shown := cmp.Or(w.QRURL, w.URL), w.URL // the code carries the short form
		if *link {
			url, shown = w.LinkURL, w.LinkURL
		}
		if *png != "" {
			if err := writeQRPNG(url, *png, 384); err != nil {
				return err
			}
		}
		if *asJSON {
			return writeJSON(stdout, w)
		}
		if f, ok := stdout.(*os.File); ok && termWidth(f) > 0 {
			cols, rows := termSize(f)
			return qrTerminal(stdout, control.NewClient(*socket), w, url, *link, host, cols, rows)
		}
		text, err := qrText(url, colorOK(stdout))
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, text)
		fmt.Fprintf(stdout, "\n%s\n\n", esc(shown))
		if w.PreviousClosed != "" {
			fmt.Fprintf(stdout, "note     the last window closed early: %s (someone may have been guessing); this is a new one\n", esc(w.PreviousClosed))
		}
		if *link {
			fmt.Fprintf(stdout, "send this link; the receiver types the code: %s (changes every 30 s)\n", esc(w.Code))
		} else {
			fmt.Fprintln(stdout, "scan it with your phone's camera, or run 'pairing join URL' on another computer")
		}
		if len(w.Networks) > 1 {
			fmt.Fprintf(stdout, "network  for devices on %s (%s)", esc(w.Networks[0].Interface), w.Networks[0].Address)
			for _, n := range w.Networks[1:] {
				fmt.Fprintf(stdout, "; on %s: pairing qr --address %s", esc(n.Interface), n.Address)
			}
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "device   %s (%s)\ncloses   in %s, or after one device paired\n", esc(w.Name), esc(w.ID), time.Until(w.SecretExpires).Round(time.Second))
		return nil
	}
	return c
}

// colorOK: colour only on a terminal, and never with NO_COLOR set.
func colorOK(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func joinCommand(o streams) *cobra.Command {
	c, fs := newCommand("join URL", "pair with the device whose QR code or link is URL", "Pair with the device whose QR code or link is URL (or the bare fragment after #): try its addresses over TLS pinned to its fingerprint, find it by discovery if none answers, prove the secret, and store it as paired", 1, 1)
	stdout, stderr := o.stdout, o.stderr
	stateDir := fs.String("state-dir", config.DefaultStateDir(), "this device's state directory (identity, paired devices)")
	socket := fs.String("socket", config.DefaultSocket(), "control socket of this device's daemon, used when it runs")
	name := fs.String("name", config.DefaultName(), "this device's name, shown on the other device")
	code := fs.StringP("code", "c", "", "the 6-digit code shown on the device, for a link without secret (asked on the terminal otherwise)")
	timeout := fs.DurationP("timeout", "t", pairing.DefaultJoinTimeout, "give up after this long")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError{"join needs the URL from the other device's QR code"}
		}
		p, err := pairing.ParsePayload(args[0])
		if err != nil {
			return hintError{err, "copy the whole URL from 'pairing qr' on the other device"}
		}
		if own, ok := pairing.ReadFingerprint(*stateDir); ok && own == p.Fingerprint {
			return hintError{pairing.ErrSelf, joinHint(pairing.ErrSelf)} // before a code is asked for
		}
		if p.Secret == nil && *code == "" {
			fmt.Fprintf(stderr, "enter the 6-digit code shown on %s: ", orDash(p.Name))
			line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
			*code = strings.TrimSpace(line)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		res, err := control.NewClient(*socket).Join(ctx, control.JoinRequest{URL: args[0], Code: *code})
		if errors.Is(err, control.ErrNoDaemon) {
			res, err = joinHere(ctx, p, *stateDir, *name, *code)
		}
		if err != nil {
			return hintError{err, joinHint(err)}
		}
		if *asJSON {
			return writeJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "paired with %s (%s) at %s in %.0f ms\n", orDash(res.Peer.Name), esc(res.Peer.ID), escAll(res.Peer.Addresses), res.DurationMS)
		return nil
	}
	return c
}

// joinHere pairs without a daemon, on the state directory itself.
func joinHere(ctx context.Context, p *pairing.Payload, dir, name, code string) (*control.JoinResult, error) {
	sd, err := pairing.OpenStateDir(dir)
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	id, err := pairing.LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	store, err := pairing.OpenStore(dir)
	if store == nil {
		return nil, err
	}
	res, err := pairing.Join(ctx, p, pairing.JoinOptions{Identity: id, Store: store, Name: name, Code: code, Beacon: beacon.Config{}})
	return daemon.JoinView(res), err
}

// joinHint names what to do for each way a join fails: by the error, or
// by its reason code when it came through the daemon (never by its text).
func joinHint(err error) string {
	reason := control.ReasonOf(err)
	is := func(target error) bool {
		return errors.Is(err, target) || reason != "" && reason == pairing.KnownReason(target)
	}
	switch {
	case is(pairing.ErrSelf):
		return "scan or join this code on the other device; 'pairing qr' there shows its own code for this one"
	case is(pairing.ErrImpostor):
		return "make sure the code is from the device you mean; if that device was reinstalled, scan its new code"
	case is(pairing.ErrWindowClosed):
		return "run 'pairing qr' on the device and use the new code"
	case is(pairing.ErrWrongSecret):
		return "use the device's current code: 'pairing qr' on it shows it"
	case is(pairing.ErrWrongCode), is(pairing.ErrCodeReused):
		return "type the code shown by 'pairing qr' on the device now"
	case is(pairing.ErrTooMany):
		return "wait a minute before trying again"
	case is(pairing.ErrStalled):
		return "the connection opened but stalled: a link on the way drops full-size packets (a path MTU problem: a VPN, tunnel or switch port with a smaller MTU); 'pairing diag' checks it"
	case is(pairing.ErrUnreachable):
		return "are both devices on the same network? 'pairing diag' on both tells why not"
	}
	return "see 'pairing join --help'"
}

func peersCommand(o streams) *cobra.Command {
	c, fs := newCommand("peers", "list paired devices, online state, addresses", "List the paired devices, whether each is online now (a computer: heard on the LAN within the last 3 announce intervals; a phone: its page is open and connected), and their last addresses", 0, 0)
	stdout := o.stdout
	stateDir := fs.String("state-dir", config.DefaultStateDir(), "state directory, read when no daemon runs")
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	asJSON := fs.BoolP("json", "j", false, "print JSON")
	c.RunE = func(_ *cobra.Command, args []string) error {
		peers, err := control.NewClient(*socket).Peers(context.Background())
		noDaemon := errors.Is(err, control.ErrNoDaemon)
		if noDaemon {
			var stored []pairing.PairedPeer
			stored, err = pairing.ReadStore(*stateDir)
			peers = []control.Paired{}
			for _, p := range stored {
				peers = append(peers, daemon.PairedView(p, false))
			}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, peers)
		}
		if len(peers) == 0 {
			fmt.Fprintln(stdout, "no paired devices; pair one with 'pairing qr' here and 'pairing join URL' there")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tKIND\tPAIRED\tNOW\tADDRESSES")
		for _, p := range peers {
			now := onlineWord(p)
			if noDaemon {
				now = "? (no daemon)" // only a running daemon hears them
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", esc(p.ID), orDash(p.Name), esc(p.Kind), p.PairedAt.Local().Format("2006-01-02 15:04"), now, escAll(p.Addresses))
		}
		return tw.Flush()
	}
	return c
}

// onlineWord says whether a paired device is online now (the daemon's
// one definition): a phone's is whether its page is open.
func onlineWord(p control.Paired) string {
	switch {
	case p.Kind == pairing.KindBrowser && p.Online:
		return "page open"
	case p.Kind == pairing.KindBrowser:
		return "page closed"
	case p.Online:
		return "online"
	}
	return "offline"
}

func unpairCommand(o streams) *cobra.Command {
	c, fs := newCommand("unpair PEER", "forget a paired device (ID, ID prefix or name)", "Forget a paired device, named by its ID, a unique prefix of the ID, or its name", 1, 1)
	stdout := o.stdout
	stateDir := fs.String("state-dir", config.DefaultStateDir(), "state directory, changed directly when no daemon runs")
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	c.ValidArgsFunction = completePeer
	c.RunE = func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError{"unpair needs a device: its ID, an ID prefix or its name ('pairing peers' lists them)"}
		}
		p, err := control.NewClient(*socket).Unpair(context.Background(), args[0])
		if errors.Is(err, control.ErrNoDaemon) {
			p, err = unpairHere(*stateDir, args[0])
		}
		if err != nil {
			return hintError{err, "'pairing peers' lists the paired devices"}
		}
		fmt.Fprintf(stdout, "unpaired %s (%s)\n", orDash(p.Name), esc(p.ID))
		return nil
	}
	return c
}

func renameCommand(o streams) *cobra.Command {
	c, fs := newCommand("rename PEER NAME", "rename a paired device", "Give a paired device, named by its ID, a unique prefix of the ID, or its name, a new name (1 to 63 bytes): the one 'pairing peers', 'send' and the log show", 2, 2)
	stateDir := fs.String("state-dir", config.DefaultStateDir(), "state directory, changed directly when no daemon runs")
	socket := fs.String("socket", config.DefaultSocket(), "control socket of the daemon; env PAIRING_SOCKET")
	c.ValidArgsFunction = completePeer
	c.RunE = func(_ *cobra.Command, args []string) error {
		if err := beacon.ValidName(args[1]); err != nil {
			return usageError{fmt.Sprintf("bad NAME: %v", err)}
		}
		p, err := control.NewClient(*socket).Rename(context.Background(), args[0], args[1])
		if errors.Is(err, control.ErrNoDaemon) {
			p, err = changeHere(*stateDir, args[0], func(s *pairing.Store, p pairing.PairedPeer) error {
				p.Name = args[1]
				return s.Put(p)
			})
			if err == nil {
				p.Name = args[1]
			}
		}
		if err != nil {
			return hintError{err, "'pairing peers' lists the paired devices"}
		}
		fmt.Fprintf(o.stdout, "renamed %s to %s\n", esc(p.ID), orDash(p.Name))
		return nil
	}
	return c
}

func unpairHere(dir, query string) (*control.Paired, error) {
	return changeHere(dir, query, func(s *pairing.Store, p pairing.PairedPeer) error { return s.Remove(p.Fingerprint) })
}

// changeHere applies change to the paired device query names, in the
// state directory itself (no daemon runs).
func changeHere(dir, query string, change func(*pairing.Store, pairing.PairedPeer) error) (*control.Paired, error) {
	sd, err := pairing.OpenStateDir(dir)
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	store, err := pairing.OpenStore(dir)
	if err != nil {
		return nil, err
	}
	p, err := pairing.Resolve(store.List(), query)
	if err != nil {
		return nil, err
	}
	if err := change(store, p); err != nil {
		return nil, err
	}
	v := daemon.PairedView(p, false)
	return &v, nil
}

// daemonError adds the hint for a daemon that is not there.
func daemonError(err error) error {
	if errors.Is(err, control.ErrNoDaemon) {
		return hintError{err, "start it with 'pairing serve' (or 'systemctl start pairing'), or name its socket with --socket"}
	}
	if errors.Is(err, control.ErrNotAllowed) {
		return hintError{err, "root and the members of group pairing may use it: 'sudo adduser $USER pairing', then log in again (or use sudo)"}
	}
	return err
}
