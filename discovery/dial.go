package discovery

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DialError is a TCP connect that failed, with what the network said:
// Outcome is ProbeRefused, ProbeTimeout, ProbeProhibited,
// ProbeUnreachable or ProbeError.
type DialError struct {
	Outcome string
	// ICMP is set when an ICMP error came: its type and code, and From,
	// who sent it (a router, the target, or this host when no neighbour
	// answered).
	ICMP       bool
	Type, Code uint8
	From       netip.Addr
	Err        error
}

func (e *DialError) Error() string {
	if e.From.IsValid() {
		return fmt.Sprintf("%s (ICMP from %s): %v", e.Outcome, e.From, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Outcome, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// ICMP types and codes that say a filter rejected the packet: IPv4
// destination unreachable 9, 10 (network/host administratively
// prohibited) and 13 (communication administratively prohibited, what
// nftables' "reject with icmpx admin-prohibited" and firewalld send);
// ICMPv6 destination unreachable 1 (administratively prohibited), 5
// (source address failed policy) and 6 (reject route).
const (
	icmpUnreach  = 3
	icmp6Unreach = 1
)

// DialClassified connects to target over TCP (from local, when valid)
// within ctx. A failure is a *DialError that tells a reset, silence, an
// ICMP "administratively prohibited" and an ICMP unreachable apart: the
// socket takes the kernel's ICMP errors (IP_RECVERR), which a plain
// connect folds into one EHOSTUNREACH.
func DialClassified(ctx context.Context, target netip.AddrPort, local netip.Addr) (net.Conn, error) {
	ip := target.Addr().Unmap()
	family, level, opt := unix.AF_INET, unix.SOL_IP, unix.IP_RECVERR
	if ip.Is6() {
		family, level, opt = unix.AF_INET6, unix.SOL_IPV6, unix.IPV6_RECVERR
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &DialError{Outcome: ProbeError, Err: err}
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		return nil, &DialError{Outcome: ProbeError, Err: err}
	}
	if local.IsValid() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(local.Unmap(), 0))); err != nil {
			return nil, &DialError{Outcome: ProbeError, Err: fmt.Errorf("bind %s: %w", local, err)}
		}
	}
	err = unix.Connect(fd, sockaddr(netip.AddrPortFrom(ip, target.Port())))
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return nil, classifyDial(fd, err)
	}
	if err := waitWritable(ctx, fd); err != nil {
		return nil, &DialError{Outcome: ProbeTimeout, Err: err}
	}
	if soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil {
		return nil, &DialError{Outcome: ProbeError, Err: err}
	} else if soerr != 0 {
		return nil, classifyDial(fd, syscall.Errno(soerr))
	}
	// Connected: the ICMP errors of a live connection are not ours to
	// read, so stop taking them before handing the socket over.
	unix.SetsockoptInt(fd, level, opt, 0)
	f := os.NewFile(uintptr(fd), "tcp")
	keep = true
	defer f.Close() // FileConn dups the descriptor
	c, err := net.FileConn(f)
	if err != nil {
		return nil, &DialError{Outcome: ProbeError, Err: err}
	}
	return c, nil
}

// waitWritable polls fd until the connect finished or ctx ended.
func waitWritable(ctx context.Context, fd int) error {
	for {
		wait := 50 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if err := ctx.Err(); err != nil || wait <= 0 {
			return cmpErr(err, context.DeadlineExceeded)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(wait.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// classifyDial reads the ICMP error the kernel queued for fd, if any, and
// turns err into a DialError.
func classifyDial(fd int, err error) *DialError {
	de := &DialError{Outcome: outcomeOf(err), Err: err}
	buf, oob := make([]byte, 256), make([]byte, 512)
	_, oobn, _, _, rerr := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if rerr != nil {
		return de
	}
	msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
	if perr != nil {
		return de
	}
	for _, m := range msgs {
		if !(m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) &&
			!(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
			continue
		}
		if len(m.Data) < 16 {
			continue
		}
		origin, typ, code := m.Data[4], m.Data[5], m.Data[6]
		switch origin {
		case unix.SO_EE_ORIGIN_ICMP:
			if typ == icmpUnreach {
				de.Outcome = icmpOutcome(code, []byte{9, 10, 13}, 3)
			}
		case unix.SO_EE_ORIGIN_ICMP6:
			if typ == icmp6Unreach {
				de.Outcome = icmpOutcome(code, []byte{1, 5, 6}, 4)
			}
		default:
			continue
		}
		de.ICMP, de.Type, de.Code, de.From = true, typ, code, offender(m.Data[16:])
	}
	return de
}

// icmpOutcome maps an ICMP destination-unreachable code.
func icmpOutcome(code byte, prohibited []byte, port byte) string {
	for _, p := range prohibited {
		if code == p {
			return ProbeProhibited
		}
	}
	if code == port {
		return ProbeRefused
	}
	return ProbeUnreachable
}

// offender is the sender of the ICMP error (struct sockaddr after
// struct sock_extended_err).
func offender(b []byte) netip.Addr {
	if len(b) < 2 {
		return netip.Addr{}
	}
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) >= 8 {
			return netip.AddrFrom4([4]byte(b[4:8]))
		}
	case unix.AF_INET6:
		if len(b) >= 24 {
			return netip.AddrFrom16([16]byte(b[8:24]))
		}
	}
	return netip.Addr{}
}

// outcomeOf is the outcome an errno alone tells.
func outcomeOf(err error) string {
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		return ProbeRefused
	case errors.Is(err, unix.EACCES):
		return ProbeProhibited // ICMPv6 administratively prohibited
	case errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTDOWN):
		return ProbeUnreachable
	case errors.Is(err, unix.ETIMEDOUT):
		return ProbeTimeout
	}
	return ProbeError
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa
}
