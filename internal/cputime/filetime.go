package cputime

import "time"

// filetimeSpan is the span a Windows FILETIME holds, its two 32-bit halves
// counting 100 ns intervals (as GetProcessTimes gives CPU times). It has
// no build tag so that its test runs everywhere.
func filetimeSpan(high, low uint32) time.Duration {
	return time.Duration(int64(high)<<32|int64(low)) * 100
}
