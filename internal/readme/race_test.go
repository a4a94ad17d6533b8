//go:build race

package readme

// raceEnabled: the snippets are built with -race too, so that they reuse
// the packages the race-enabled test run has already compiled.
const raceEnabled = true
