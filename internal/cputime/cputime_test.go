package cputime_test

import (
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/cputime"
)

// Process counts the CPU time a busy loop burns, and not the time the
// process sleeps. The loop runs until 100 ms of CPU time are counted, so a
// busy machine only makes it longer.
func TestProcessCountsCPUNotSleep(t *testing.T) {
	before := cputime.Process()
	time.Sleep(200 * time.Millisecond)
	if slept := cputime.Process() - before; slept > 150*time.Millisecond {
		t.Errorf("a 200 ms sleep counted %v of CPU time, want less than 150ms", slept)
	}
	start, deadline := cputime.Process(), time.Now().Add(10*time.Second)
	for cputime.Process()-start < 100*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of a busy loop counted %v of CPU time, want 100ms", cputime.Process()-start)
		}
	}
}
