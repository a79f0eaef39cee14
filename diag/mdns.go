package diag

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lanpairing/pairing/discovery"
	"github.com/lanpairing/pairing/discovery/beacon"
	"github.com/lanpairing/pairing/internal/ident"
)

// procUDP are the kernel's UDP socket tables; a test may swap them.
var procUDP = []string{"/proc/net/udp", "/proc/net/udp6"}

// MDNSFacts is the mdns step's record: whether this host can use port
// 5353, who holds it, which _pairing._tcp services answer a query, and
// whether the daemon's own is among them.
type MDNSFacts struct {
	// JoinInterface is the interface the 5353 join was tried on;
	// JoinError is why it failed.
	JoinInterface string   `json:"join_interface,omitempty"`
	JoinError     string   `json:"join_error,omitempty"`
	Responders    []string `json:"responders,omitempty"`
	// OwnVisible is whether the daemon's service answered (nil without
	// a daemon).
	OwnVisible *bool `json:"own_service_visible,omitempty"`
	// Found are the other devices whose service answered, with each
	// address and whether it is on one of our subnets.
	Found []MDNSPeer `json:"found,omitempty"`
}

// MDNSPeer is one device found by mDNS (by the peers step's query).
type MDNSPeer struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Addresses []PeerAddr `json:"addresses"`
	// OnLink: an address is on one of our subnets. When none is, the
	// answer crossed a router: an mDNS reflector carries it.
	OnLink bool `json:"on_link"`
}

// browseWait is how long the mdns step listens for services.
const browseWait = 1200 * time.Millisecond

func gatherMDNS(ctx context.Context, e *env, in Facts) Facts {
	out := &MDNSFacts{}
	ifs, _ := e.cfg.Interfaces()
	for i := range ifs {
		if ifs[i].Flags&net.FlagUp != 0 && ifs[i].Flags&net.FlagMulticast != 0 && ifs[i].Flags&net.FlagLoopback == 0 {
			out.JoinInterface = ifs[i].Name
			c, err := net.ListenMulticastUDP("udp4", &ifs[i], &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
			if err != nil {
				out.JoinError = err.Error()
			} else {
				c.Close()
			}
			break
		}
	}
	out.Responders = udpHolders(5353)
	var daemonFP ident.Fingerprint
	if in.Daemon != nil && in.Daemon.Status != nil {
		daemonFP, _ = ident.Parse(in.Daemon.Status.Fingerprint)
	}
	// The devices the peers step's query found by mDNS, with where
	// their addresses are.
	if in.Peers != nil {
		for _, p := range in.Peers.Peers {
			if slices.Contains(p.Sources, discovery.SourceMDNS) && len(out.Found) < maxMDNSPeers {
				out.Found = append(out.Found, MDNSPeer{ID: p.ID, Name: p.Name, Addresses: p.Addresses, OnLink: p.OnLink()})
			}
		}
	}
	if daemonFP.IsZero() {
		return Facts{MDNS: out}
	}
	// Is the daemon's own service visible? Browse until it answers.
	var mu sync.Mutex
	seenSelf := false
	bctx, cancel := context.WithTimeout(ctx, browseWait)
	defer cancel()
	discovery.Browse(bctx, e.cfg.Interfaces, e.log, func(ev beacon.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Packet.Fingerprint == daemonFP {
			seenSelf = true
			cancel()
		}
	})
	mu.Lock()
	v := seenSelf
	mu.Unlock()
	out.OwnVisible = &v
	return Facts{MDNS: out}
}

// maxMDNSPeers bounds the devices the mdns step records.
const maxMDNSPeers = 32

// udpHolders names the processes holding local UDP port (by socket inode).
func udpHolders(port int) []string {
	want := fmt.Sprintf(":%04X", port)
	inodes := map[string]bool{}
	for _, path := range procUDP {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && strings.HasSuffix(f[1], want) {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	var names []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, pd := range pids {
		fds, _ := os.ReadDir(pd + "/fd")
		for _, fd := range fds {
			l, _ := os.Readlink(pd + "/fd/" + fd.Name())
			if inodes[l] {
				comm, _ := os.ReadFile(pd + "/comm")
				n := fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), filepath.Base(pd))
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	if len(names) == 0 {
		names = append(names, fmt.Sprintf("%d socket(s) of other users", len(inodes)))
	}
	return names
}
