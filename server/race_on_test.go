//go:build race

package server_test

// raceDetector is true when the tests run under the race detector, which
// slows calls down several times and makes time-based measures noisy.
const raceDetector = true
