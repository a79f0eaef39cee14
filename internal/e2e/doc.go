// Package e2e holds the scenario tests: real `pairing` processes (built
// from ./cmd/pairing by lantest.BuildPairing) in simulated LANs of
// network namespaces, with attackers, Chromium and Firefox pages,
// coturn, avahi and a systemd container, and the benchmarks of `make
// bench`. It has no code of its own: everything is in its _test.go
// files, each named for its subject; helpers_test.go has the shared
// helpers (node, serve, status, qr, join, send, …).
package e2e
