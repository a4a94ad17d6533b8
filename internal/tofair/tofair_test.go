package tofair

import (
	"math"
	"testing"
)

func TestSeconds(t *testing.T) {
	// 20 calls a second; the new pods get shares[k] of second k.
	series := func(shares ...float64) (fresh, all []float64) {
		for _, s := range shares {
			fresh, all = append(fresh, 20*s), append(all, 20)
		}
		return
	}
	const thr = 0.8 * 0.6
	for _, tc := range []struct {
		name   string
		shares []float64
		event  float64
		width  int
		want   float64 // -1: not fair
	}{
		// A step to the fair share at second 3: the 1 s share is there at
		// the end of second 3; the trailing 5 s share once 4 of its 5
		// seconds are at 0.6 (4 × 0.6 / 5 = 0.48), at the end of second 6.
		{"step 1s", []float64{0, 0, 0, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6}, 2.5, 1, 1.5},
		{"step 5s", []float64{0, 0, 0, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6}, 2.5, 5, 4.5},
		{"never", []float64{0, 0, 0, 0, 0, 0}, 1, 5, -1},
		// A dip at the end means the share did not stay.
		{"dip at the end", []float64{0, 0.6, 0.6, 0.6, 0.6, 0.6, 0, 0, 0}, 0.5, 1, -1},
		// A dip in the middle moves the time past it.
		{"dip in the middle", []float64{0, 0.6, 0.6, 0.2, 0.6, 0.6}, 0.5, 1, 4.5},
		// The 5 s window forgives the same dip: its windows stay at 0.48
		// or more from the end of second 4 on.
		{"dip in the middle, 5s", []float64{0, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.2, 0.6, 0.6}, 0.5, 5, 4.5},
		{"event after the data", []float64{0.6, 0.6}, 5, 1, -1},
		{"no width", []float64{0.6, 0.6}, 0, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh, all := series(tc.shares...)
			got, ok := Seconds(fresh, all, tc.event, thr, tc.width)
			if !ok {
				got = -1
			}
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Seconds = %v (ok %v), want %v", got, ok, tc.want)
			}
		})
	}
	if _, ok := Seconds([]float64{1}, []float64{1}, 0, 0, 1); ok {
		t.Error("a threshold of 0 read as fair")
	}
	// A last second with no calls at all reads as a share of 0: not fair.
	if s, ok := Seconds([]float64{12, 0}, []float64{20, 0}, 0, thr, 1); ok {
		t.Errorf("a silent last second read as fair at %v s", s)
	}
}
