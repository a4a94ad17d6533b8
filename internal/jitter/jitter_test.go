package jitter

import (
	"math"
	"testing"
	"time"
)

func TestApplyStaysWithinTenPercent(t *testing.T) {
	for range 1000 {
		if d := Apply(30 * time.Second); d < 27*time.Second || d > 33*time.Second {
			t.Fatalf("Apply(30s) = %v, want 27s to 33s", d)
		}
	}
}

func TestApplyNeverOverflows(t *testing.T) {
	for _, d := range []time.Duration{math.MaxInt64, math.MaxInt64 - 1, 0, 5} {
		if got := Apply(d); got < 0 || (d > 0 && got <= 0) {
			t.Fatalf("Apply(%d) = %d", d, got)
		}
	}
}
