package e2e

// The phone for years, on any browser, with files of any size (issue
// 23): the page renews its certificate before the browser's one-year
// cap ends it, a browser that cannot pair says so at once, big files
// pass in bounded memory, a phone that lost its data re-pairs in place
// of its old entry, and an unpair reaches the open page.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPhoneRenewal: Chromium with its clock moved. At +300 days the
// page renews its certificate over its channel and the daemon moves the
// device to it; at +400 days (past the first certificate's year) it is
// still the same device, and peers has one entry all along.
func TestPhoneRenewal(t *testing.T) {
	requireChromium(t)
	requireFaketime(t)
	t.Parallel()
	a, b := twoHosts(t)
	profile := t.TempDir()
	url := a.qr().URL
	run := func(offset, shot string) string {
		knobs := []string{"PAIR_NAME=Anna's phone", "PAIR_SHOT=renew-" + shot + "-"}
		if offset != "" {
			knobs = append(knobs, "PAIR_FAKETIME="+offset)
		}
		return b.RunTest(t, "TestHelperPhoneLife", helperEnv(a, url, profile, knobs...)...)
	}
	out := run("", "0d")
	if between(out, "KIND<", ">") != "ok" {
		t.Fatalf("pairing:\n%s", out)
	}
	// The certificate asked for is the most a browser gives: one year.
	exp, _ := strconv.ParseFloat(between(out, "CERT_EXPIRES<", ">"), 64)
	if left := time.Until(time.UnixMilli(int64(exp))); left < 360*24*time.Hour || left > 366*24*time.Hour {
		t.Errorf("the certificate is good for %v, want a year", left)
	}
	first := a.peers()
	if len(first) != 1 {
		t.Fatalf("peers: %+v", first)
	}

	out = run("+300d", "300d")
	if between(out, "STATUS<", ">STATUS") != "Connected again. This phone stays paired." {
		t.Fatalf("at +300 days:\n%s", out)
	}
	renewed := a.peers()
	if len(renewed) != 1 || renewed[0].Fingerprint == first[0].Fingerprint || renewed[0].Name != "Anna's phone" || !renewed[0].PairedAt.Equal(first[0].PairedAt) {
		t.Fatalf("at +300 days the device did not move to a new certificate: before %+v, after %+v", first, renewed)
	}
	if !strings.Contains(a.daemon.Stderr(), "browser: moved to its renewed certificate") {
		t.Errorf("the log does not say the device moved")
	}
	exp, _ = strconv.ParseFloat(between(out, "CERT_EXPIRES<", ">"), 64)
	if left := time.UnixMilli(int64(exp)).Sub(time.Now().Add(300 * 24 * time.Hour)); left < 360*24*time.Hour {
		t.Errorf("the renewed certificate has %v left at +300 days, want a year", left)
	}

	out = run("+400d", "400d")
	if between(out, "STATUS<", ">STATUS") != "Connected again. This phone stays paired." {
		t.Fatalf("at +400 days:\n%s", out)
	}
	if last := a.peers(); len(last) != 1 || last[0].Fingerprint != renewed[0].Fingerprint {
		t.Fatalf("at +400 days: %+v (renewed %s)", last, renewed[0].Fingerprint)
	}
}

// TestPhoneNoWebRTC: a browser without RTCPeerConnection hears within
// 3 s of its own clock which browsers work, with a Try again button.
func TestPhoneNoWebRTC(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	a, b := twoHosts(t)
	out := b.RunTest(t, "TestHelperPhoneLife", helperEnv(a, a.qr().URL, t.TempDir(), "PAIR_NORTC=1", "PAIR_SHOT=nortc-")...)
	status := between(out, "STATUS<", ">STATUS")
	if between(out, "KIND<", ">") != "bad" || !strings.Contains(status, "no WebRTC") || !strings.Contains(status, "Use Chrome, Firefox or Safari 15 or newer.") || between(out, "RETRY<", ">") != "Try again" {
		t.Fatalf("no WebRTC:\n%s", out)
	}
	if ms, _ := strconv.Atoi(between(out, "SAID_MS<", ">")); ms <= 0 || ms > 3000 {
		t.Errorf("the page said it after %d ms of its own time, want within 3 s", ms)
	}
}

// bigFileMB is the file of TestPhoneBigFile: what people send to phones
// (a video), past what a page could hold twice.
const bigFileMB = browserBigFileMB

// TestPhoneBigFile: a big file down to the page and up from it, SHA-256
// confirmed both ways, with the browser's memory (all its processes)
// growing far less than the file; the page's storage is gone once the
// file is dismissed.
func TestPhoneBigFile(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "pairing.conf")
	os.WriteFile(conf, []byte("max-file-mb = 4096\nmax-inbox-mb = 8192\n"), 0o644)
	a, b := twoHosts(t, "--config", conf)
	profile := t.TempDir()
	down, downSum := randomFile(t, "down.bin", bigFileMB<<20)
	up, upSum := randomFile(t, "up.bin", bigFileMB<<20)
	out := runLong(t, b.Host, "TestHelperPhoneLife", 12*time.Minute, helperEnv(a, a.qr().URL, profile, "PAIR_NAME=big", "PAIR_PEER=big", "PAIR_RECV_FILE="+down, "PAIR_SEND_FILE="+up, "PAIR_SHOT=big-", "PAIR_SAVE_DIR="+t.TempDir())...)
	if between(out, "PAGE_SHA<", ">") != downSum || between(out, "SEND_SHA<", ">") != downSum || between(out, "SAVED_SHA<", ">") != downSum {
		t.Fatalf("down to the page:\n%s", out)
	}
	if st := between(out, "FILE_STATE<", ">"); !strings.HasPrefix(st, "done:") {
		t.Fatalf("up from the page: %q\n%s", st, out)
	}
	got := a.inboxSHA("up.bin")
	if got != upSum {
		t.Errorf("inbox has up.bin with SHA-256 %q, want %s", got, upSum)
	}
	down_, _ := strconv.ParseFloat(between(out, "GROWTH_MB<", ">"), 64)
	up_, _ := strconv.ParseFloat(between(out, "GROWTH_UP_MB<", ">"), 64)
	t.Logf("browser memory growth: %.0f MB receiving, %.0f MB sending %d MB", down_, up_, bigFileMB)
	// Holding the file would be +1.5 GB (it was held twice: +3 GB). What
	// grows now is the pieces the page's collector has not let go of yet
	// and its buffers (165-250 MB here, more under load; the bench
	// compares it with the 300 MB target): the bound is a third of the
	// file.
	if limit := float64(bigFileMB) / 3; down_ > limit || up_ > limit {
		t.Errorf("the browser grew by %.0f MB receiving and %.0f MB sending a %d MB file (limit %.0f MB)", down_, up_, bigFileMB, limit)
	}
	if n := between(out, "SPOOLED_AFTER<", ">"); n != "0" {
		t.Errorf("the page kept %s pieces of a dismissed file", n)
	}
}

// TestPhoneUnpairRepair: `pairing unpair` reaches the open page, which
// says it is no longer paired, and so does its bookmark later; an
// iPhone hears how to keep its pairing (the Home Screen); a phone
// that lost its data pairs again and, when the person confirms, takes
// the place of its old entry (one entry, the old name).
func TestPhoneUnpairRepair(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	a, b := twoHosts(t)
	profile := t.TempDir()
	url := a.qr().URL
	sync := t.TempDir()
	done := make(chan string, 1)
	go func() {
		done <- b.RunTest(t, "TestHelperPhoneLife", helperEnv(a, url, profile, "PAIR_NAME=old phone", "PAIR_SYNC="+sync, "PAIR_SHOT=unpair-")...)
	}()
	waitFile(t, filepath.Join(sync, "paired"))
	if _, errOut, err := a.Run(a.bin, "unpair", "--socket", a.socket, "old phone"); err != nil {
		t.Fatalf("unpair: %v %s", err, errOut)
	}
	out := <-done
	if !strings.Contains(between(out, "UNPAIRED<", ">"), "This phone is no longer paired with a") {
		t.Fatalf("the open page after unpair:\n%s", out)
	}
	// The bookmark, later: the page says so (not "another device paired").
	out = b.RunTest(t, "TestHelperPhoneLife", helperEnv(a, url, profile, "PAIR_SHOT=bookmark-")...)
	if st := between(out, "STATUS<", ">STATUS"); !strings.Contains(st, "no longer paired") {
		t.Fatalf("the bookmark after unpair: %q\n%s", st, out)
	}

	// Paired again, then its data is lost (a fresh profile): it pairs with
	// a new QR code as the device it was.
	// As an iPhone: the page says once how to keep the pairing.
	iphone := "PAIR_UA=Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	out = b.RunTest(t, "TestHelperPhoneLife", helperEnv(a, a.qr().URL, profile, "PAIR_NAME=Anna's phone", iphone, "PAIR_SHOT=iphone-")...)
	if between(out, "KIND<", ">") != "ok" || !strings.Contains(between(out, "IOS_HINT<", ">"), "add this page to your Home Screen") {
		t.Fatalf("pairing again as an iPhone:\n%s", out)
	}
	old := a.peers()
	out = b.RunTest(t, "TestHelperPhoneLife", helperEnv(a, a.qr().URL, t.TempDir(), "PAIR_NAME=new guess", "PAIR_BEFORE=Anna's phone", "PAIR_SHOT=repair-")...)
	if between(out, "BEFORE<", ">") != "I was “Anna's phone”" || !strings.Contains(between(out, "STATUS<", ">STATUS"), "“Anna's phone” again") {
		t.Fatalf("re-pair in place:\n%s", out)
	}
	now := a.peers()
	if len(now) != 1 || now[0].Name != "Anna's phone" || now[0].Fingerprint == old[0].Fingerprint {
		t.Fatalf("after re-pairing in place: %+v (was %+v)", now, old)
	}
}
