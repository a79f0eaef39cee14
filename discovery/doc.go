// Package discovery finds out which of this device's addresses others can
// reach (a staged fallback: preferred route, interface sweep, peers' reports), and which devices are on the
// LAN (beacon replies, the peer table).
//
// Two parts of the daemon live here, each owning its state, lock and
// goroutines: Own (the acquisition loop, the network watch, the addresses
// peers' observations confirmed) and Neighbours (the beacon, mDNS, the
// peer table, telling peers where we see them).
//
// Own address, in order, each stage recorded with outcome and evidence:
//
//  1. preferred: the routing table's source address for an outside
//     destination (a UDP connect, no packet sent), proved by a self-ping;
//  2. sweep: every private, link-local or ULA address of every up
//     interface (virtual adapters last), each self-pinged;
//  3. peer: a beacon query; each reply says which address the peer saw
//     us at, and each such address is self-pinged before use.
//
// A self-ping dials this device's own listener at the address with a random
// nonce that names the address; it passes only when this process's listener
// received that nonce on that very address. Stages 1 and 2 always run (2
// adds the other addresses a QR code carries); stage 3 runs only when
// nothing was confirmed, since it waits on the network.
package discovery
