//go:build race

package testkit

// Race is true when the binary is built with the race detector (go test
// -race), which slows calls down several times and makes time-based
// measures noisy; a test that builds Go code can pass -race on so that it
// reuses the packages the run has compiled.
const Race = true
