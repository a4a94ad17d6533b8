//go:build !unix && !windows

package cputime

import "time"

// Process is 0: this platform (js, wasip1, plan9) does not give a process's
// CPU time.
func Process() time.Duration { return 0 }
