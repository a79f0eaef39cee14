package e2e

// Attacks with names and text on a real `pairing serve`: a file named
// like the inbox's log, terminal escapes in texts and names, names that
// read other than they are (bidi overrides, zero-width characters), and a
// device pairing with itself.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/lantest"
	"github.com/lanpairing/pairing/pairing"
	"github.com/lanpairing/pairing/pairing/inbox"
	"github.com/lanpairing/pairing/pairing/rtc"
	"github.com/lanpairing/pairing/pairing/session"
)

// rawBytes are what must never reach a terminal from outside text: ESC,
// BEL, DEL, C1 CSI (as UTF-8 and as a raw byte), and the format
// characters of the attacks below.
var rawBytes = []string{"\x1b", "\x07", "\x7f", "\u009b", "\x9b", "\u202e", "\u2066", "\u200b", "\ufeff"}

// assertSafe fails t when out holds one of rawBytes.
func assertSafe(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range rawBytes {
		if strings.Contains(out, r) {
			t.Errorf("%s prints %q raw:\n%q", what, r, out)
		}
	}
}

// forgedLog is a line of the inbox log as a peer would forge it.
const forgedLog = `{"kind":"text","from":"AAAA-BBBB-CCCC-DDDD","from_name":"your-bank","at":"2026-01-01T00:00:00Z","text":"your account is locked: call +1 555 0100"}` + "\n"

// TestAttackInboxLogName: a paired device sends a file named like the
// inbox's log to an inbox that received nothing yet, then the log's name
// in other cases, its rotated name and the partial files' names. Each is
// a plain file with the sent bytes; 'pairing inbox' lists no forged
// entry, and the log holds one line per thing received.
func TestAttackInboxLogName(t *testing.T) {
	a, b := pairedPair(t)
	send := func(name, path string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "d")
		os.Mkdir(dir, 0o700)
		file := filepath.Join(dir, name)
		os.WriteFile(file, []byte(forgedLog), 0o600)
		args := []string{"b", "--file", file}
		if path != "" {
			args = append(args, "--path", path)
		}
		if _, stderr, code := a.send(args...); code != 0 {
			t.Fatalf("send %s: %s", name, stderr)
		}
	}
	send("inbox.jsonl", "")
	send("INBOX.JSONL", "webrtc")
	send("Inbox.jsonl", "tls")
	send("inbox.jsonl.1", "webrtc")
	send("incoming-1", "tls")
	if _, stderr, code := a.send("b", "a real text"); code != 0 {
		t.Fatalf("send text: %s", stderr)
	}
	items := b.inbox()
	out, _, _ := b.Run(b.bin, "inbox", "--socket", b.socket)
	if strings.Contains(out, "your-bank") || len(items) != 6 || items[5].Text != "a real text" {
		t.Fatalf("b's inbox after the attack:\n%s\n%+v", out, items)
	}
	for _, it := range items[:5] {
		if it.Kind != "file" || it.Name != "a" {
			t.Fatalf("entry %+v", it)
		}
		if got, err := os.ReadFile(filepath.Join(b.state, "inbox", it.File)); err != nil || string(got) != forgedLog {
			t.Fatalf("%s holds %q (%v)", it.File, got, err)
		}
	}
	// The real log: one line per item, each one the daemon wrote.
	log, err := os.ReadFile(filepath.Join(b.state, "inbox", ".pairing", "inbox.jsonl"))
	if err != nil || bytes.Count(log, []byte("\n")) != len(items) || bytes.Contains(log, []byte("your-bank")) {
		t.Fatalf("the log (%v):\n%s", err, log)
	}
	// Names of the inbox's own directory and of old partial files are
	// hidden names: refused.
	for _, hidden := range []string{".pairing", ".incoming-1"} {
		f := filepath.Join(t.TempDir(), hidden)
		os.WriteFile(f, []byte(forgedLog), 0o600)
		if _, stderr, code := a.send("b", "--file", f); code == 0 || !strings.Contains(stderr, "hidden") {
			t.Fatalf("a hidden name was sent: %d %s", code, stderr)
		}
	}
}

// TestAttackTerminalEscapes: terminal escapes (OSC 52 clipboard, CSI 2J
// clear screen, OSC 0 window title, C1 CSI) and a right-to-left override
// in a text from a paired device, in a paired device's name (a store an
// older version wrote) and in a stranger's beacon names reach 'pairing
// inbox', 'peers', 'discover' and 'status' escaped; --json keeps the
// exact text.
func TestAttackTerminalEscapes(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	bin := rootBin(t)
	l := lantest.New(t)
	seg := l.Segment()
	var ns []*node
	for i, name := range []string{"a", "b", "c"} {
		h := l.Host(name)
		h.Attach(seg, fmt.Sprintf("10.1.0.%d/24", i+1))
		ns = append(ns, newNode(t, h, bin))
	}
	a, b, c := ns[0], ns[1], ns[2]
	x := l.Host("x")
	x.Attach(seg, "10.1.0.100/24")
	a.serve()
	b.serve()
	if _, stderr, code := b.join(a.qr().URL); code != 0 {
		t.Fatalf("pairing: %s", stderr)
	}

	text := "\x1b]52;c;cm0gLXJmIH4K\x07 clipboard \x1b[2J\x1b[H cleared \x1b]0;pwned\x07 title \u009b2J c1 \x7f del invoice\u202efdp.exe\nsecond line"
	if _, stderr, code := b.send("a", text); code != 0 {
		t.Fatalf("send: %s", stderr)
	}
	out, _, err := a.Run(a.bin, "inbox", "--socket", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	assertSafe(t, "inbox", out)
	for _, want := range []string{`\x1b]52;c;cm0gLXJmIH4K\x07`, `\x1b[2J\x1b[H`, `\x1b]0;pwned\x07`, `\u009b2J`, `\x7f`, `invoice\u202efdp.exe\nsecond line`} {
		if !strings.Contains(out, want) {
			t.Errorf("inbox does not show %s:\n%s", want, out)
		}
	}
	raw, _, _ := a.Run(a.bin, "inbox", "--json", "--socket", a.socket)
	assertSafe(t, "inbox --json", raw)
	if items := a.inbox(); len(items) != 1 || items[0].Text != text {
		t.Errorf("inbox --json: %+v", items)
	}

	// A stranger answers discovery queries and announces itself, with a
	// name that sets the window title and one that reverses the text.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	helper := x.Command(ctx, os.Args[0], "-test.run=^TestHelperEvilBeacon$", "-test.v", "-test.count=1")
	helper.Env = append(helper.Env, lantest.HelperEnv+"=1")
	var hout lantest.SyncBuffer
	helper.Stdout, helper.Stderr = &hout, &hout
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		helper.Wait()
		if t.Failed() {
			t.Logf("beacon helper:\n%s", hout.String())
		}
	}()
	x.WaitUDP(t, beacon.DefaultPort)
	out, stderr, _ := c.Run(c.bin, "discover", "--timeout", "3s", "--no-mdns", "--state-dir", c.state)
	assertSafe(t, "discover", out+stderr)
	for _, want := range []string{`\x1b]0;pwned\x07`, `invoice\u202efdp.exe`} {
		if !strings.Contains(out, want) {
			t.Errorf("discover does not show %s:\n%s", want, out)
		}
	}
	lantest.Eventually(t, 10*time.Second, func() error {
		out, _, err := a.Run(a.bin, "status", "--socket", a.socket)
		assertSafe(t, "status", out)
		if err != nil || !strings.Contains(out, `invoice\u202efdp.exe`) || !strings.Contains(out, `\x1b]0;pwned\x07`) {
			return fmt.Errorf("status does not list the strangers yet: %v\n%s", err, out)
		}
		return nil
	})

	// A paired device's name with escapes, from a store an older version
	// wrote (names then took format characters) or edited by hand.
	b.daemon.Stop()
	store := filepath.Join(b.state, pairing.StoreFile)
	sb, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	evil := "\x1b]0;pwned\x07a\u202eexe.pdf"
	ej, _ := json.Marshal(evil)
	sb = bytes.Replace(sb, []byte(`"name": "a"`), append([]byte(`"name": `), ej...), 1)
	os.WriteFile(store, sb, 0o600)
	out, stderr, err = b.Run(b.bin, "peers", "--state-dir", b.state, "--socket", b.socket)
	if err != nil || !strings.Contains(out, `\x1b]0;pwned\x07a\u202eexe.pdf`) {
		t.Fatalf("peers: %v %s\n%s", err, stderr, out)
	}
	assertSafe(t, "peers", out)
	if ps := b.peers(); len(ps) != 1 || ps[0].Name != evil {
		t.Errorf("peers --json: %+v", ps)
	}
	// An error that quotes the name is escaped too.
	_, stderr, _ = b.Run(b.bin, "unpair", "--state-dir", b.state, "--socket", b.socket, "\x1b]0;pwned")
	assertSafe(t, "unpair's error", stderr)
}

// evilNames are the stranger's beacon names: one with terminal escapes
// (an older version dropped its packet), one with a right-to-left
// override (an older version showed it raw).
var evilNames = []string{"\x1b]0;pwned\x07", "invoice\u202efdp.exe"}

func TestHelperEvilBeacon(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackTerminalEscapes")
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	group := &net.UDPAddr{IP: beacon.DefaultGroup4.AsSlice(), Port: beacon.DefaultPort}
	c, err := net.ListenMulticastUDP("udp4", ifi, group)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// packet encodes a beacon with a name Append refuses: the name field
	// (type 1, see the beacon package's wire format) written by hand.
	packet := func(typ beacon.Type, i int, seenAs netip.Addr) []byte {
		var fp ident.Fingerprint
		fp[0], fp[1] = 0xcc, byte(i)
		b, err := (&beacon.Packet{Type: typ, Fingerprint: fp, Instance: 1, Port: 9, Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.100")}, SeenAs: seenAs}).Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return append(append(b, 1, byte(len(evilNames[i]))), evilNames[i]...)
	}
	deadline := time.Now().Add(25 * time.Second)
	go func() {
		for time.Now().Before(deadline) {
			for i := range evilNames {
				c.WriteTo(packet(beacon.TypeAnnounce, i, netip.Addr{}), group)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		c.SetReadDeadline(deadline)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if p, err := beacon.Decode(buf[:n]); err != nil || p.Type != beacon.TypeQuery {
			continue
		}
		for i := range evilNames {
			c.WriteTo(packet(beacon.TypeReply, i, from.AddrPort().Addr().Unmap()), from)
		}
	}
}

// TestAttackNames: file names that read other than they are (a
// right-to-left override, an isolate, zero-width characters) sent by a
// paired device's own software straight over the direct TLS path and the
// data channel are refused with an error naming the character; device
// names with them are refused in a pairing request (before the window
// counts it: a device pairs right after), in a join and in a rename.
func TestAttackNames(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b, xh := attackLAN(t, 1)
	a.serve()
	x := newNode(t, xh, a.bin)
	if _, stderr, code := x.join(a.qr().URL); code != 0 {
		t.Fatalf("pairing x: %s", stderr)
	}
	url := a.qr().URL
	out := x.RunTest(t, "TestHelperNames", "ATTACK_STATE="+x.state, "ATTACK_URL="+url)
	r := result(t, out)
	n := len(badNames)
	if r["tls_named"] != n || r["webrtc_named"] != n || r["pair_named"] != 1 || r["accepted"] != 0 {
		t.Fatalf("want every name refused with its character named on both paths and in the pairing request: %v\n%s", r, out)
	}
	if items := a.inbox(); len(items) != 0 {
		t.Fatalf("a's inbox: %+v", items)
	}
	entries, _ := os.ReadDir(filepath.Join(a.state, "inbox"))
	for _, e := range entries {
		if e.Name() != ".pairing" {
			t.Fatalf("a file in a's inbox: %q", e.Name())
		}
	}
	// A join with such a name is refused before it dials; a rename too.
	if _, stderr, code := b.join(url, "--name", "b\u2066x"); code == 0 || !strings.Contains(stderr, "U+2066") {
		t.Fatalf("join with a bad name: %d %s", code, stderr)
	}
	_, stderr, err := a.Run(a.bin, "rename", "--socket", a.socket, "x", "x\u202eexe.pdf")
	if exitCode(err) != 2 || !strings.Contains(stderr, "U+202E (right-to-left override)") {
		t.Fatalf("rename: %v %s", err, stderr)
	}
	assertSafe(t, "rename's error", stderr)
	// The window took none of it: b pairs with the same code.
	if _, stderr, code := b.join(url); code != 0 {
		t.Fatalf("b after the attack: %s", stderr)
	}
	for _, p := range a.peers() {
		if p.Name != "x" && p.Name != "b" {
			t.Fatalf("a paired %+v", p)
		}
	}
}

// badNames are file names that read other than they are, each with the
// character its refusal must name.
var badNames = map[string]string{
	"invoice\u202efdp.exe": "U+202E",
	"report\u2066.txt":     "U+2066",
	"pass\u200bwords.txt":  "U+200B",
	"\ufeffnotes.txt":      "U+FEFF",
}

func TestHelperNames(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the attacker's host; see TestAttackNames")
	}
	counts := map[string]int{}
	defer printResult(t, counts)
	id, err := pairing.LoadIdentity(os.Getenv("ATTACK_STATE"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pairing.ParsePayload(os.Getenv("ATTACK_URL"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.AddrPort{netip.AddrPortFrom(p.Host, p.Port)}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	for name, char := range badNames {
		_, _, err := session.SendFileTLS(ctx, id, p.Fingerprint, addrs, name, 4, strings.NewReader("evil"))
		t.Logf("tls %q: %v", name, err)
		switch {
		case err == nil:
			counts["accepted"]++
		case strings.Contains(err.Error(), char):
			counts["tls_named"]++
		}
	}
	ep := rtc.NewEndpoint(rtc.Config{Certificate: rtc.Certificate(id.Key, id.Cert)})
	s, offer, err := ep.Offer(ctx, p.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	answer, err := pairing.Signal(ctx, id, p.Fingerprint, addrs, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(answer); err != nil {
		t.Fatal(err)
	}
	dc, err := s.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, char := range badNames {
		_, err := rtc.SendFile(ctx, dc, rtc.Offer{Name: name, Size: 4}, strings.NewReader("evil"), nil)
		t.Logf("webrtc %q: %v", name, err)
		switch {
		case err == nil:
			counts["accepted"]++
		case strings.Contains(err.Error(), char):
			counts["webrtc_named"]++
		}
	}
	// A pairing request of a new device whose name reverses the text.
	status, er, err := rawPair(attacker(t), p, "phone\u202egpj.exe")
	t.Logf("pair: %d %+v %v", status, er, err)
	if status == http.StatusOK {
		counts["accepted"]++
	} else if strings.Contains(er.Error, "U+202E") {
		counts["pair_named"]++
	}
}

// rawPair sends a pairing request with the secret of p as a device with
// identity id named name, without the checks Join makes first.
func rawPair(id *pairing.Identity, p *pairing.Payload, name string) (int, pairing.ErrorResponse, error) {
	var er pairing.ErrorResponse
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", netip.AddrPortFrom(p.Host, p.Port).String(),
		&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.TLSCertificate()}, InsecureSkipVerify: true})
	if err != nil {
		return 0, er, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	cs := conn.ConnectionState()
	ekm, err := cs.ExportKeyingMaterial("EXPORTER-pairing-v1", nil, 32)
	if err != nil {
		return 0, er, err
	}
	m := hmac.New(sha256.New, p.Secret)
	m.Write([]byte("pairing client proof v1"))
	m.Write(ekm)
	body, _ := json.Marshal(pairing.PairRequest{Proof: m.Sum(nil), Name: name, Kind: pairing.KindDevice})
	req, _ := http.NewRequest(http.MethodPost, "https://pair"+pairing.PathPair, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(conn); err != nil {
		return 0, er, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, er, err
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er, nil
}

// TestAttackSelfJoin: a device given its own code refuses it, in the
// command (before a code is asked for), in its daemon's join, and in its
// server (a pairing request with its own certificate and the right
// proof); nothing is paired and the window stays open for the device it
// was meant for, which pairs right after.
func TestAttackSelfJoin(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	a, b := twoHosts(t)
	url := a.qr().URL
	const msg = "this is this device's own code"
	if _, stderr, code := a.join(url); code != 1 || !strings.Contains(stderr, msg) {
		t.Fatalf("join of the own code: exit %d: %s", code, stderr)
	}
	// Through the daemon (the command's state directory is another one).
	_, stderr, err := a.Run(a.bin, "join", "--state-dir", t.TempDir(), "--socket", a.socket, url)
	if exitCode(err) != 1 || !strings.Contains(stderr, msg) {
		t.Fatalf("join through the daemon: %v: %s", err, stderr)
	}
	out := a.RunTest(t, "TestHelperSelfPair", "ATTACK_STATE="+a.state, "ATTACK_URL="+url)
	if r := result(t, out); r["status"] != http.StatusConflict || r["self"] != 1 {
		t.Fatalf("pairing request with the own certificate: %v\n%s", r, out)
	}
	if ps := a.peers(); len(ps) != 0 {
		t.Fatalf("a paired with %+v", ps)
	}
	if st, err := a.status(); err != nil || !st.Window.Open {
		t.Fatalf("the window after the self-join: %+v %v", st.Window, err)
	}
	if _, stderr, code := b.join(url); code != 0 {
		t.Fatalf("b with the same code: %s", stderr)
	}
	if ps := a.peers(); len(ps) != 1 || ps[0].Name != "b" {
		t.Fatalf("a's peers: %+v", ps)
	}
}

func TestHelperSelfPair(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside the device's own host; see TestAttackSelfJoin")
	}
	counts := map[string]int{}
	defer printResult(t, counts)
	id, err := pairing.LoadIdentity(os.Getenv("ATTACK_STATE"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pairing.ParsePayload(os.Getenv("ATTACK_URL"))
	if err != nil {
		t.Fatal(err)
	}
	status, er, err := rawPair(id, p, "me")
	t.Logf("pair: %d %+v %v", status, er, err)
	counts["status"] = status
	if er.Reason == "self" && strings.Contains(er.Error, "own code") {
		counts["self"]++
	}
}

// TestInboxOldLogMoves: a daemon started on an older version's inbox
// keeps its history: the log beside the received files moves into the
// inbox's own directory. When that log was a file a paired device sent
// (planted before the upgrade), only what the daemon appended after it is
// kept, and the file is what the device sent again.
func TestInboxOldLogMoves(t *testing.T) {
	n := loneNode(t, "10.1.0.1/24")
	dir := filepath.Join(n.state, "inbox")
	os.MkdirAll(dir, 0o700)
	sum := sha256.Sum256([]byte(forgedLog))
	rec, _ := json.Marshal(inbox.Item{Kind: "file", From: "PEER-0000", Name: "b", At: time.Now().UTC(), File: "inbox.jsonl", Size: int64(len(forgedLog)), SHA256: fmt.Sprintf("%x", sum)})
	later, _ := json.Marshal(inbox.Item{Kind: "text", From: "PEER-0000", Name: "b", At: time.Now().UTC(), Text: "from before the upgrade"})
	os.WriteFile(filepath.Join(dir, "inbox.jsonl"), []byte(forgedLog+string(rec)+"\n"+string(later)+"\n"), 0o600)
	n.serve()
	items := n.inbox()
	if len(items) != 2 || items[0].File != "inbox.jsonl" || items[1].Text != "from before the upgrade" {
		t.Fatalf("inbox after the upgrade: %+v", items)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "inbox.jsonl")); string(b) != forgedLog {
		t.Fatalf("the received file holds %q", b)
	}
}
