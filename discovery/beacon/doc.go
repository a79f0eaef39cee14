// Package beacon is the UDP multicast discovery protocol of pairing: the
// packet format, the per-interface multicast transport and the engine that
// queries, announces, replies and says goodbye.
//
// # Transport
//
// Beacons go to the IPv4 group 239.255.80.65 (organisation-local scope, so
// routers never forward it) and to the IPv6 link-local group ff02::5041:4952
// ("PAIR"), both on UDP port 27280, with TTL / hop limit 1. A daemon binds the
// port with SO_REUSEADDR and SO_REUSEPORT (several processes on one host can
// listen at once) and joins the groups on every interface that is up and can
// multicast. Packets are sent once per interface from a separate socket on an
// ephemeral port; replies to a query are unicast to that socket, so a reply
// never lands in another process that shares the group port.
//
// # Packet (version 1)
//
// All integers are big endian. A packet is a fixed 50-byte header followed by
// TLV fields, 1024 bytes at most in all.
//
//	offset size field
//	0      4    magic "PAIR" (0x50 0x41 0x49 0x52)
//	4      1    version (1)
//	5      1    type: 1 query, 2 announce, 3 reply, 4 goodbye
//	6      1    flags: bit 0 = a pairing window is open; other bits 0
//	7      1    reserved, 0
//	8      8    instance: random per process start (a restart is noticed,
//	            and a process drops its own packets by it)
//	16     32   fingerprint: SHA-256 of the sender's certificate; all zero
//	            for an anonymous querier (pairing discover)
//	48     2    listener port (TCP), 0 when the sender has none
//	50     ...  fields: type (1 byte), length (1 byte), value (length bytes)
//
// Fields:
//
//	1 name       UTF-8, 1..63 bytes, no control or format characters (a
//	             received name with them is shown escaped); at most once
//	2 address    4 or 16 bytes: an address the sender believes it has;
//	             repeated, at most 16
//	3 seen-as    4 or 16 bytes: in a reply, the source address the query
//	             came from; at most once
//	4 hint       8 bytes: truncated HMAC-SHA256 of the current pairing
//	             secret; at most once
//
// Unknown field types are skipped, so version 1 can grow fields. A packet
// with another magic or version, a truncated header or field, an oversized
// body, a malformed known field or a type outside 1..4 is dropped and
// counted; none of these is ever fatal.
//
// # Behaviour
//
// At start a daemon sends a query and a burst of announces at short,
// jittered spacing, then announces every ~30 s (±20 %). It answers a query
// after a random delay of up to 10 ms, unicast, with a reply that carries
// the query's source address as seen-as; replies are rate limited per
// source address. On close it sends a goodbye. Peers expire after three
// announce intervals without news.
package beacon
