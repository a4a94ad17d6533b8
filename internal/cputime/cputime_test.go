package cputime_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/cputime"
)

// Process counts the CPU time a busy loop burns, and not the time the
// process sleeps. The loop runs until 100 ms of CPU time are counted, so a
// busy machine only makes it longer; the count cannot outrun the loop's wall
// time on every core the process may use (a unit wrong by 10× would).
func TestProcessCountsCPUNotSleep(t *testing.T) {
	before := cputime.Process()
	time.Sleep(200 * time.Millisecond)
	if slept := cputime.Process() - before; slept > 150*time.Millisecond {
		t.Errorf("a 200 ms sleep counted %v of CPU time, want less than 150ms", slept)
	}
	start, began := cputime.Process(), time.Now()
	deadline := began.Add(10 * time.Second)
	var spun time.Duration
	for spun < 100*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of a busy loop counted %v of CPU time, want 100ms", spun)
		}
		spun = cputime.Process() - start
	}
	wall := time.Since(began)
	if most := wall*time.Duration(runtime.GOMAXPROCS(0)+1) + 40*time.Millisecond; spun > most {
		t.Errorf("a busy loop of %v on %d cores counted %v of CPU time, more than %v", wall, runtime.GOMAXPROCS(0), spun, most)
	}
}
