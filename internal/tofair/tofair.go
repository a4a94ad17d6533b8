// Package tofair reads a scale-up's time to fair from per-second call
// counts, as the emulated lab (example/balance) and the server package's
// BenchmarkFairShareScaleUp report it.
package tofair

import "math"

// Seconds returns the seconds after event (seconds since the counts'
// origin; second k holds the calls of [k, k+1)) at which the new pods'
// share of the calls, fresh over all summed over the trailing width
// seconds (rounded to 3 decimals), reached threshold and never fell
// below it again, to the last second. The time counts to the end of the
// first such window, so a width of 5 adds up to 5 s of lag by design: it
// is what a dashboard showing a 5 s rate shows. ok is false when the last
// window is below threshold, when event falls past the counts
// (floor(event) ≥ their length), with a threshold of 0 or less, or with a
// width below 1. Counts beyond the shorter of fresh and all are not read. A
// window with no calls at all reads as a share of 0. The result is rounded
// to 0.1 s.
func Seconds(fresh, all []float64, event, threshold float64, width int) (secs float64, ok bool) {
	n := min(len(all), len(fresh))
	start := max(int(math.Floor(event)), 0)
	if n == 0 || start >= n || threshold <= 0 || width < 1 {
		return 0, false
	}
	found := -1
	for k := n - 1; k >= start; k-- {
		var f, a float64
		for j := max(k-width+1, 0); j <= k; j++ {
			f, a = f+fresh[j], a+all[j]
		}
		if share(f, a) < threshold {
			break
		}
		found = k
	}
	if found < 0 {
		return 0, false
	}
	return math.Round((float64(found+1)-event)*10) / 10, true
}

// share returns a over b rounded to 3 decimals, as the lab prints shares,
// and 0 when b is 0.
func share(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}
