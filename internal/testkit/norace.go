//go:build !race

package testkit

// Race is true when the binary is built with the race detector; see
// race.go.
const Race = false
