package lantest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Processes inside a host: commands, background processes, and test
// helpers re-run inside a host.

// Command returns a command that runs inside the host. A race-enabled
// binary exits at once (no 1 s race-runtime sleep at exit).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), h.Env...)
	return cmd
}

// Run runs a command inside the host to completion (at most 30 s).
func (h *Host) Run(name string, args ...string) (stdout, stderr string, err error) {
	return h.RunInput("", name, args...)
}

// RunInput is Run with input on the command's standard input.
func (h *Host) RunInput(input, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	cmd := h.Command(ctx, name, args...)
	cmd.Stdin = strings.NewReader(input)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// Proc is a background process in a host.
type Proc struct {
	cmd    *exec.Cmd
	out    SyncBuffer
	err    SyncBuffer
	done   chan struct{}
	result error
}

// Start starts a command inside the host in the background; it is killed
// at cleanup if still running.
func (h *Host) Start(name string, args ...string) *Proc {
	h.l.t.Helper()
	return start(h, nil, name, args...)
}

func start(h *Host, set func(*exec.Cmd), name string, args ...string) *Proc {
	h.l.t.Helper()
	p := &Proc{done: make(chan struct{})}
	p.cmd = h.Command(context.Background(), name, args...)
	if set != nil {
		set(p.cmd)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	if err := p.cmd.Start(); err != nil {
		h.l.t.Fatalf("start %s in %s: %v", name, h.Name, err)
	}
	go func() { p.result = p.cmd.Wait(); close(p.done) }()
	h.l.mu.Lock()
	h.l.procs = append(h.l.procs, p)
	h.l.mu.Unlock()
	return p
}

// Stdout and Stderr return what the process wrote so far.
func (p *Proc) Stdout() string { return p.out.String() }
func (p *Proc) Stderr() string { return p.err.String() }

// Stop sends SIGTERM and waits up to 5 s, then kills. It returns the
// process's exit error.
func (p *Proc) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.result
}

// Pid is the process's ID (`ip netns exec` execs the command in place).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill kills the process at once (a crash) and waits for it.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// SyncBuffer is a bytes.Buffer safe for one writer and readers at once
// (a process's output, a logger's).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Eventually calls f until it returns nil or timeout passes, then fails t
// with f's last error.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// HelperEnv marks a test process that RunTest started inside a host.
const HelperEnv = "PAIRING_LAN_HELPER"

// InHelper reports whether this test process is a helper started by
// RunTest; helper tests return at once otherwise.
func InHelper() bool { return os.Getenv(HelperEnv) == "1" }

// RunTest runs the test named name of the current test binary inside the
// host (at most 60 s), with env added, and fails t with its output when it
// fails. The helper test checks InHelper.
func (h *Host) RunTest(t testing.TB, name string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := h.Command(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(cmd.Env, HelperEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", name, h.Name, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s in %s did not pass:\n%s", name, h.Name, out)
	}
	return string(out)
}

// RunInHost builds a one-host LAN (eth0 10.9.0.1/24 on a bridge) and runs
// the helper test named name of the current test binary inside it. Call
// it from an outer test that skips when InHelper.
func RunInHost(t testing.TB, name string) string {
	t.Helper()
	RequireRoot(t)
	l := New(t)
	h := l.Host("a")
	h.Attach(l.Segment(), "10.9.0.1/24")
	return h.RunTest(t, name)
}

// WaitUDP waits until a socket in the host is bound to UDP port (a
// server's readiness, whatever it prints and however it buffers).
func (h *Host) WaitUDP(t testing.TB, port int) {
	t.Helper()
	want := fmt.Sprintf(":%04X ", port)
	Eventually(t, 5*time.Second, func() error {
		out, _, err := h.Run("cat", "/proc/net/udp", "/proc/net/udp6")
		if err == nil && strings.Contains(out, want) {
			return nil
		}
		return fmt.Errorf("nothing bound to UDP %d in %s", port, h.Name)
	})
}
