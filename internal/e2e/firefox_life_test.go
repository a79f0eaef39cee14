package e2e

// Firefox ESR for years (issue 23): it pairs, renews its certificate
// over its channel when less than 90 days are left, and stays the same
// single device.
//
// Firefox's clock cannot be moved with libfaketime, as Chromium's is:
// Firefox deadlocks while it loads, before it prints anything (so no
// WebDriver BiDi endpoint ever opens). Its allocator (mozjemalloc, in
// the firefox executable) reads steady_clock::now() while it holds its
// init lock; libfaketime's clock_gettime then initialises itself, and
// that init allocates (a dlsym of a name glibc lacks, "__ftime", builds
// its error message with malloc; with that name supplied, a sem_open of
// "/faketime_sem_<ppid>" allocates next), so malloc waits on the lock
// its own thread holds. FAKETIME_NO_CACHE, FAKETIME_DONT_FAKE_MONOTONIC
// and libfaketimeMT hang the same way.
// So the test moves Firefox's wall clock with clockShift below: a
// preload of four functions that add an offset to CLOCK_REALTIME and
// nothing else, with no initialisation that allocates. The page, its
// Date, and Firefox's certificates (NSS, PR_Now) all see the moved
// clock; the monotonic clocks stay real.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanpairing/pairing/internal/lantest"
)

// clockShift moves CLOCK_REALTIME (and gettimeofday, time, timespec_get)
// of a process and its children by CLOCK_SHIFT_S seconds. The real time
// comes from the clock_gettime system call, allowed in Firefox's
// sandboxes.
const clockShift = `#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long shift(void) {
	static long long s = -1;
	long long v = __atomic_load_n(&s, __ATOMIC_RELAXED);
	if (v < 0) {
		const char *e = getenv("CLOCK_SHIFT_S");
		v = e ? atoll(e) : 0;
		if (v < 0) v = 0;
		__atomic_store_n(&s, v, __ATOMIC_RELAXED);
	}
	return v;
}

static int real(clockid_t c, struct timespec *ts) { return syscall(SYS_clock_gettime, c, ts); }

int clock_gettime(clockid_t c, struct timespec *ts) {
	int r = real(c, ts);
	if (r == 0 && (c == CLOCK_REALTIME || c == CLOCK_REALTIME_COARSE)) ts->tv_sec += shift();
	return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
	struct timespec ts;
	if (real(CLOCK_REALTIME, &ts) != 0) return -1;
	tv->tv_sec = ts.tv_sec + shift();
	tv->tv_usec = ts.tv_nsec / 1000;
	if (tz) { ((int *)tz)[0] = 0; ((int *)tz)[1] = 0; }
	return 0;
}

time_t time(time_t *t) {
	struct timespec ts;
	if (real(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
	ts.tv_sec += shift();
	if (t) *t = ts.tv_sec;
	return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
	if (base != TIME_UTC || clock_gettime(CLOCK_REALTIME, ts) != 0) return 0;
	return base;
}
`

// buildClockShift compiles clockShift (gcc, which -race needs anyway).
func buildClockShift(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs gcc")
		}
		t.Skip("needs gcc")
	}
	dir := t.TempDir()
	src, lib := filepath.Join(dir, "clockshift.c"), filepath.Join(dir, "clockshift.so")
	os.WriteFile(src, []byte(clockShift), 0o644)
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return lib
}

// TestFirefoxRenewal: Firefox ESR with its clock moved. It pairs; at
// +300 days the page renews its certificate over its channel and the
// daemon moves the device to it; at +400 days (past the first
// certificate's year) it is still the same device, one entry in peers.
func TestFirefoxRenewal(t *testing.T) {
	if lantest.InHelper() {
		t.Skip("outer test")
	}
	requireFirefox(t)
	shift := buildClockShift(t)
	t.Parallel()
	a, b := twoHosts(t)
	profile := t.TempDir()
	url := a.qr().URL
	const day = 24 * time.Hour
	// run runs the helper with Firefox's clock days ahead, and checks
	// that the page's clock was (within a day: the run takes seconds).
	run := func(days int) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := b.Command(ctx, os.Args[0], "-test.run=^TestHelperFirefoxLife$", "-test.v", "-test.count=1")
		cmd.Env = append(append(cmd.Env, lantest.HelperEnv+"=1"),
			helperEnv(a, url, profile, "PAIR_CLOCK_SHIFT_LIB="+shift, fmt.Sprintf("PAIR_CLOCK_SHIFT_S=%d", days*86400))...)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestHelperFirefoxLife") {
			t.Fatalf("Firefox at +%d days: %v\n%s", days, err, out)
		}
		page, _ := strconv.ParseInt(between(string(out), "PAGE_NOW<", ">"), 10, 64)
		if moved := time.UnixMilli(page).Sub(time.Now()); moved < time.Duration(days)*day-day || moved > time.Duration(days)*day+day {
			t.Fatalf("at +%d days the page's clock was %v ahead:\n%s", days, moved, out)
		}
		return string(out)
	}
	expires := func(out string) time.Time {
		ms, _ := strconv.ParseFloat(between(out, "CERT_EXPIRES<", ">"), 64)
		return time.UnixMilli(int64(ms))
	}

	out := run(0)
	if st := between(out, "STATUS<", ">STATUS"); !strings.HasPrefix(st, "Paired.") {
		t.Fatalf("pairing: %q\n%s", st, out)
	}
	// The page asks for a year and gets it. Firefox, like libwebrtc,
	// gives 30 days when nothing is asked and caps what is asked at 365
	// days, so the page's CERT_LIFE is the most Firefox gives too.
	if left := time.Until(expires(out)); left < 364*day || left > 366*day {
		t.Errorf("the certificate is good for %v, want a year", left)
	}
	probe := func(name string) time.Duration {
		ms, _ := strconv.ParseFloat(between(out, name+"<", ">"), 64)
		return time.Duration(ms) * time.Millisecond
	}
	if d, y := probe("PROBE_DEFAULT"), probe("PROBE_TWO_YEARS"); d < 29*day || d > 31*day || y < 364*day || y > 366*day {
		t.Errorf("Firefox's generateCertificate gave %v by default and %v when asked for two years, want 30 and 365 days", d, y)
	}
	first := a.peers()
	if len(first) != 1 || first[0].Name != "Firefox phone" {
		t.Fatalf("peers after pairing: %+v", first)
	}

	out = run(300)
	if st := between(out, "STATUS<", ">STATUS"); st != "Connected again. This phone stays paired." {
		t.Fatalf("at +300 days: %q\n%s", st, out)
	}
	renewed := a.peers()
	if len(renewed) != 1 || renewed[0].Fingerprint == first[0].Fingerprint || renewed[0].Name != "Firefox phone" || !renewed[0].PairedAt.Equal(first[0].PairedAt) {
		t.Fatalf("at +300 days the device did not move to a new certificate: before %+v, after %+v", first, renewed)
	}
	if !strings.Contains(a.daemon.Stderr(), "browser: moved to its renewed certificate") {
		t.Errorf("the log does not say the device moved:\n%s", a.daemon.Stderr())
	}
	if left := expires(out).Sub(time.Now().Add(300 * day)); left < 364*day {
		t.Errorf("the renewed certificate has %v left at +300 days, want a year", left)
	}

	out = run(400)
	if st := between(out, "STATUS<", ">STATUS"); st != "Connected again. This phone stays paired." {
		t.Fatalf("at +400 days: %q\n%s", st, out)
	}
	if last := a.peers(); len(last) != 1 || last[0].Fingerprint != renewed[0].Fingerprint || last[0].Name != "Firefox phone" {
		t.Fatalf("at +400 days: %+v (renewed %s)", last, renewed[0].Fingerprint)
	}
}

// TestHelperFirefoxLife runs inside a host: Firefox ESR on PAIR_URL with
// PAIR_PROFILE, its clock PAIR_CLOCK_SHIFT_S ahead (PAIR_CLOCK_SHIFT_LIB
// preloaded), named "Firefox phone" when the page asks. It prints
// PAGE_NOW<the page's Date.now()>, STATUS<…>STATUS, CERT_EXPIRES, and
// what generateCertificate gives: PROBE_DEFAULT, PROBE_TWO_YEARS (ms).
func TestHelperFirefoxLife(t *testing.T) {
	if !lantest.InHelper() {
		t.Skip("runs inside a simulated host; see TestFirefoxRenewal")
	}
	f := launchFirefox(t, os.Getenv("PAIR_PROFILE"), 9226,
		"LD_PRELOAD="+os.Getenv("PAIR_CLOCK_SHIFT_LIB"), "CLOCK_SHIFT_S="+os.Getenv("PAIR_CLOCK_SHIFT_S"))
	f.call("session.new", map[string]any{"capabilities": map[string]any{}})
	var tree struct{ Contexts []struct{ Context string } }
	json.Unmarshal(f.call("browsingContext.getTree", map[string]any{}), &tree)
	ctx := tree.Contexts[0].Context
	f.call("browsingContext.navigate", map[string]any{"context": ctx, "url": os.Getenv("PAIR_URL"), "wait": "complete"})
	eval := func(expr string) string {
		var r struct {
			Result struct{ Value any }
		}
		json.Unmarshal(f.call("script.evaluate", map[string]any{"expression": expr, "target": map[string]any{"context": ctx}, "awaitPromise": true}), &r)
		return fmt.Sprint(r.Result.Value)
	}
	fmt.Printf("PAGE_NOW<%s>\n", eval(`String(Date.now())`))
	state := ""
	for deadline := time.Now().Add(90 * time.Second); state != "ok" && state != "bad"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the page never settled; status %q", eval(`document.getElementById("status").textContent`))
		}
		state = eval(`!document.getElementById("nameform").hidden ? "ask" : document.getElementById("status").className`)
		if state == "ask" {
			eval(`document.getElementById("name").value = "Firefox phone"; document.getElementById("nameform").requestSubmit(); "named"`)
		}
	}
	fmt.Printf("STATUS<%s>STATUS\nCERT_EXPIRES<%s>\n", eval(`document.getElementById("status").textContent`), eval(`document.body.dataset.certExpires`))
	fmt.Printf("PROBE_DEFAULT<%s>\nPROBE_TWO_YEARS<%s>\n",
		eval(`RTCPeerConnection.generateCertificate({name: "ECDSA", namedCurve: "P-256"}).then(c => String(c.expires - Date.now()))`),
		eval(`RTCPeerConnection.generateCertificate({name: "ECDSA", namedCurve: "P-256", expires: 730 * 86400e3}).then(c => String(c.expires - Date.now()))`))
	f.close()
}
