//go:build unix

package gateway_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time, user and system, the test process used so
// far; on a loaded machine it varies less than wall-clock latency.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
