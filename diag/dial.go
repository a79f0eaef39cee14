package diag

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Outcomes of a TCP connect. A silent drop (timeout) and an ICMP
// unreachable are missing answers; a refusal (a reset) and an ICMP
// "administratively prohibited" are answers, and the last is positive
// evidence of a packet filter.
const (
	DialOK          = "ok"
	DialTimeout     = "timeout"
	DialRefused     = "refused"
	DialProhibited  = "prohibited"
	DialUnreachable = "unreachable"
	DialError       = "error"
)

// DialResult is what one TCP connect met.
type DialResult struct {
	Target  string  `json:"target"`
	Outcome string  `json:"outcome"`
	Error   string  `json:"error,omitempty"`
	RTTms   float64 `json:"rtt_ms,omitempty"`
	// ICMP is the ICMP error the kernel queued for the connect, if any
	// ("type 3 code 13 from 10.1.0.2").
	ICMP string `json:"icmp,omitempty"`
}

// dialTCP connects to target within d (and ctx), with IP_RECVERR set so
// an ICMP error's type and code can be read: the kernel turns "host
// unreachable" and "administratively prohibited" into the same errno.
func dialTCP(ctx context.Context, target netip.AddrPort, d time.Duration) (net.Conn, DialResult) {
	res := DialResult{Target: target.String(), Outcome: DialError}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	a := target.Addr()
	v6 := a.Is6() && !a.Is4In6()
	fam, lvl, opt := unix.AF_INET, unix.SOL_IP, unix.IP_RECVERR
	var sa unix.Sockaddr
	if !v6 {
		sa = &unix.SockaddrInet4{Port: int(target.Port()), Addr: a.Unmap().As4()}
	} else {
		fam, lvl, opt = unix.AF_INET6, unix.SOL_IPV6, unix.IPV6_RECVERR
		s6 := &unix.SockaddrInet6{Port: int(target.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				s6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s6
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		res.Error = err.Error()
		return nil, res
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	unix.SetsockoptInt(fd, lvl, opt, 1)
	start := time.Now()
	err = unix.Connect(fd, sa)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		res.classify(err, fd, v6)
		return nil, res
	}
	for err != nil {
		if ctx.Err() != nil {
			res.Outcome, res.Error = DialTimeout, "connect timed out"
			return nil, res
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, perr := unix.Poll(pfd, 50)
		if perr != nil && !errors.Is(perr, unix.EINTR) {
			res.Error = perr.Error()
			return nil, res
		}
		if n == 0 {
			continue
		}
		soErr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if gerr != nil {
			res.Error = gerr.Error()
			return nil, res
		}
		if soErr != 0 {
			res.classify(unix.Errno(soErr), fd, v6)
			return nil, res
		}
		err = nil
	}
	res.Outcome, res.RTTms = DialOK, msSince(start)
	f := os.NewFile(uintptr(fd), "tcp")
	keep = true
	conn, err := net.FileConn(f) // dups the descriptor
	f.Close()
	if err != nil {
		res.Outcome, res.Error = DialError, err.Error()
		return nil, res
	}
	return conn, res
}

// classify reads the ICMP error the kernel queued, if any, and names the
// outcome.
func (res *DialResult) classify(err error, fd int, v6 bool) {
	res.Error = err.Error()
	typ, code, from, ok := icmpError(fd)
	if ok {
		res.ICMP = fmt.Sprintf("type %d code %d from %s", typ, code, from)
	}
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		res.Outcome = DialRefused
	case ok && prohibited(v6, typ, code):
		res.Outcome, res.Error = DialProhibited, "ICMP administratively prohibited from "+from.String()
	case errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH) || ok:
		res.Outcome = DialUnreachable
	case errors.Is(err, unix.ETIMEDOUT):
		res.Outcome = DialTimeout
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		// A local filter's reject of our own output.
		res.Outcome = DialProhibited
	}
}

// prohibited: ICMP destination unreachable with a code that means a
// filter said no (RFC 1812: 9, 10, 13; ICMPv6: 1 and the policy codes).
func prohibited(v6 bool, typ, code uint8) bool {
	if v6 {
		return typ == 1 && (code == 1 || code == 5 || code == 6)
	}
	return typ == 3 && (code == 9 || code == 10 || code == 13)
}

// icmpError reads one queued ICMP error of fd (IP_RECVERR).
func icmpError(fd int) (typ, code uint8, from netip.Addr, ok bool) {
	buf := make([]byte, 256)
	oob := make([]byte, 512)
	_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err != nil {
		return 0, 0, netip.Addr{}, false
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return 0, 0, netip.Addr{}, false
	}
	for _, m := range msgs {
		if !(m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) &&
			!(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
			continue
		}
		size := int(unsafe.Sizeof(unix.SockExtendedErr{}))
		if len(m.Data) < size {
			continue
		}
		ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
		if ee.Origin != unix.SO_EE_ORIGIN_ICMP && ee.Origin != unix.SO_EE_ORIGIN_ICMP6 {
			continue
		}
		// The offender's address follows the struct (SO_EE_OFFENDER).
		rest := m.Data[size:]
		switch {
		case len(rest) >= 8 && binary.NativeEndian.Uint16(rest) == unix.AF_INET:
			from = netip.AddrFrom4([4]byte(rest[4:8]))
		case len(rest) >= 24 && binary.NativeEndian.Uint16(rest) == unix.AF_INET6:
			from = netip.AddrFrom16([16]byte(rest[8:24]))
		}
		return ee.Type, ee.Code, from, true
	}
	return 0, 0, netip.Addr{}, false
}
