package main

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lanpairing/pairing/pairing"
)

// The reference that goes beyond a command's help (files, formats,
// limits, JSON fields) is markdown in man/, one file per page, read by
// `pairing man`; the example config is the one make install puts in
// /etc/pairing, and pairing.conf(5) is made from it.
var (
	//go:embed man/*.md
	manText embed.FS
	//go:embed systemd/pairing.conf.example
	exampleConfig string
)

// manSection is the section of a command's page: the daemon is for the
// administrator (8), the rest are user commands (1).
func manSection(c *cobra.Command) string {
	if c.Name() == "serve" {
		return "8"
	}
	return "1"
}

// manName is a command's page name: pairing, pairing-send, …
func manName(c *cobra.Command) string { return strings.ReplaceAll(c.CommandPath(), " ", "-") }

// manPages are the commands that get a page: every visible one, and
// completion once (not a page per shell).
func manPages(root *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{root}
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "version" {
			out = append(out, c)
		}
	}
	return out
}

// manCommand writes the man pages into DIR/man1, DIR/man5 and DIR/man8
// (make install: DIR is share/man), from the same definitions as --help.
func manCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "write the man pages into DIR/man1, man5 and man8",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			pages := map[string][]byte{"man5/pairing.conf.5": confPage()}
			for _, c := range manPages(root) {
				sec := manSection(c)
				pages["man"+sec+"/"+manName(c)+"."+sec] = commandPage(root, c)
			}
			for name, b := range pages {
				path := filepath.Join(args[0], name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// header is a page's title line (go-md2man's pandoc-style header).
func header(title, section string) string {
	return fmt.Sprintf("%% %q %q %q %q %q\n", strings.ToUpper(title), section, "", "pairing "+pairing.Version, "pairing manual")
}

// commandPage is one command's page, rendered to roff.
func commandPage(root, c *cobra.Command) []byte {
	var b bytes.Buffer
	name := manName(c)
	b.WriteString(header(name, manSection(c)))
	fmt.Fprintf(&b, "# NAME\n%s \\- %s\n\n", name, c.Short)
	fmt.Fprintf(&b, "# SYNOPSIS\n**%s**", c.CommandPath())
	if use := strings.TrimPrefix(c.Use, c.Name()); c != root && strings.TrimSpace(use) != "" {
		fmt.Fprintf(&b, " %s", mdEscape(strings.TrimSpace(use)))
	}
	if c == root {
		b.WriteString(" *COMMAND* [*OPTIONS*]")
	} else if c.HasAvailableFlags() {
		b.WriteString(" [*OPTIONS*]")
	}
	b.WriteString("\n\n# DESCRIPTION\n")
	b.WriteString(mdEscape(cmpOr(c.Long, c.Short)) + "\n\n")
	extra, _ := manText.ReadFile("man/" + name + ".md")
	body, sections := splitSections(string(extra))
	b.WriteString(body)
	if c == root {
		b.WriteString("# COMMANDS\n")
		for _, sub := range manPages(root)[1:] {
			fmt.Fprintf(&b, "**%s(%s)**\n: %s\n\n", manName(sub), manSection(sub), mdEscape(sub.Short))
		}
	}
	if c.HasAvailableFlags() {
		b.WriteString("# OPTIONS\n")
		writeFlags(&b, c.NonInheritedFlags())
	}
	b.WriteString(sections)
	b.WriteString("# SEE ALSO\n")
	var see []string
	if c != root {
		see = append(see, "**pairing**(1)")
	}
	for _, s := range seeAlso[c.Name()] {
		see = append(see, fmt.Sprintf("**%s**", s))
	}
	b.WriteString(strings.Join(see, ", ") + "\n")
	return md2man.Render(b.Bytes())
}

// seeAlso are the pages each page points to, beyond pairing(1).
var seeAlso = map[string][]string{
	"pairing":          {"pairing-serve(8)", "pairing-qr(1)", "pairing-join(1)", "pairing-send(1)", "pairing.conf(5)"},
	"serve":            {"pairing.conf(5)", "pairing-status(1)", "pairing-diag(1)", "systemd.exec(5)"},
	"qr":               {"pairing-join(1)", "pairing-serve(8)"},
	"join":             {"pairing-qr(1)", "pairing-peers(1)"},
	"send":             {"pairing-inbox(1)", "pairing-peers(1)"},
	"inbox":            {"pairing-send(1)", "pairing.conf(5)"},
	"peers":            {"pairing-unpair(1)", "pairing-rename(1)", "pairing-send(1)"},
	"unpair":           {"pairing-peers(1)"},
	"rename":           {"pairing-peers(1)"},
	"status":           {"pairing-addr(1)", "pairing-serve(8)"},
	"addr":             {"pairing-status(1)", "pairing-diag(1)"},
	"discover":         {"pairing-diag(1)"},
	"diag":             {"pairing-addr(1)", "pairing-serve(8)"},
	"turn-credentials": {"pairing.conf(5)"},
}

// splitSections splits a page's markdown into the text that continues
// DESCRIPTION and the sections that follow OPTIONS (from the first
// "# " heading on).
func splitSections(md string) (body, sections string) {
	if md == "" {
		return "", ""
	}
	if strings.HasPrefix(md, "# ") {
		return "", md + "\n"
	}
	if i := strings.Index(md, "\n# "); i >= 0 {
		return md[:i+1] + "\n", md[i+1:] + "\n"
	}
	return md + "\n", ""
}

// writeFlags lists flags as a definition list: a boolean is just its
// name (never "--json[=false]"), others show their value's name and a
// default that does not depend on the machine the page was made on.
func writeFlags(b *bytes.Buffer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		name := "**\\-\\-" + f.Name + "**"
		if f.Shorthand != "" {
			name = "**\\-" + f.Shorthand + "**, " + name
		}
		arg, usage := pflag.UnquoteUsage(f)
		if a, ok := argNames[f.Name]; ok && (arg == "string" || arg == "") {
			arg = a
		}
		if f.Value.Type() != "bool" {
			name += " *" + strings.ToUpper(cmpOr(arg, "value")) + "*"
		}
		fmt.Fprintf(b, "%s\n: %s", name, mdEscape(usage))
		if def := f.DefValue; f.Value.Type() != "bool" && def != "" && def != "[]" && def != "0" && !machineDefault[f.Name] {
			fmt.Fprintf(b, " (default: %s)", mdEscape(def))
		}
		b.WriteString("\n\n")
	})
}

// argNames name the value of flags whose usage does not.
var argNames = map[string]string{"socket": "path", "state-dir": "dir", "config": "file", "listen": "host:port", "name": "name",
	"path": "tls|webrtc", "log-level": "level", "log-format": "text|json", "out": "file", "secret": "secret", "user": "user"}

// machineDefault are flags whose default is this machine's (host name,
// user, environment): the usage says where it comes from instead.
var machineDefault = map[string]bool{"socket": true, "state-dir": true, "config": true, "name": true}

// confPage is pairing.conf(5): the example config's comments and keys,
// as a page.
func confPage() []byte {
	var b bytes.Buffer
	b.WriteString(header("pairing.conf", "5"))
	b.WriteString("# NAME\npairing.conf \\- settings of the pairing daemon\n\n")
	b.WriteString("# SYNOPSIS\n*/etc/pairing/pairing.conf* (the service, and root)\n\n*~/.config/pairing/pairing.conf* (a user)\n\n")
	extra, _ := manText.ReadFile("man/pairing.conf.md")
	body, sections := splitSections(string(extra))
	b.WriteString("# DESCRIPTION\n" + body)
	b.WriteString("# KEYS\n")
	var para []string
	lastWasKey := false
	_, keys, _ := strings.Cut(exampleConfig, "\n\n") // after the file's own header
	for _, line := range strings.Split(keys, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		k, v, isKey := strings.Cut(line, " = ")
		if !isKey && strings.HasSuffix(line, " =") {
			k, isKey = strings.TrimSuffix(line, " ="), true
		}
		switch {
		case isKey && !strings.Contains(k, " "):
			// The keys after one comment share it.
			fmt.Fprintf(&b, "**%s** = *%s*\n: %s\n\n", k, mdEscape(cmpOr(v, "(empty)")), mdEscape(strings.Join(para, " ")))
			lastWasKey = true
		case line != "":
			if lastWasKey {
				para, lastWasKey = nil, false
			}
			para = append(para, line)
		}
	}
	b.WriteString(sections)
	b.WriteString("# SEE ALSO\n**pairing-serve**(8), **pairing**(1)\n")
	return md2man.Render(b.Bytes())
}

// mdEscape keeps text from being read as markdown.
func mdEscape(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "*", "\\*", "_", "\\_", "<", "\\<", ">", "\\>", "[", "\\[", "]", "\\]", "`", "\\`")
	return r.Replace(s)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
