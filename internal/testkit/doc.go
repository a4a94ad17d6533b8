// Package testkit is what rotor's tests share: a fixture Hello service
// (the example's, see internal/hellosvc), a rotor server on a loopback port
// and a client of it with the kit's dial options, an open stream and a
// call load, waiting with a deadline (Context, Eventually, Receive), and,
// for tests that run real programs (the example server, clients in other
// languages, kustomize), building a package, starting a process that ends
// with the test, waiting for it to answer HTTP, a /metrics scrape and its
// sums, the repository's root, the rule for a missing tool (skip, or fail
// where tools/install-deps.sh ran as root), and whether the race detector is
// on ([Race]).
package testkit
