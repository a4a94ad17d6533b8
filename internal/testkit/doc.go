// Package testkit is what rotor's tests share: a fixture Hello service, a
// rotor server on a loopback port and a client of it with the kit's dial
// options, polling with a deadline, and, for tests that run real programs
// (the example server, clients in other languages), building a package,
// starting a process that ends with the test, waiting for it to answer
// HTTP, a shutdown call load and a /metrics scrape.
package testkit
