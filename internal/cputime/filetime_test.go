package cputime

import (
	"testing"
	"time"
)

func TestFiletimeSpan(t *testing.T) {
	for _, tc := range []struct {
		high, low uint32
		want      time.Duration
	}{
		{0, 0, 0},
		{0, 1, 100 * time.Nanosecond},
		{0, 10_000_000, time.Second},
		{0, 0xFFFFFFFF, 0xFFFFFFFF * 100 * time.Nanosecond}, // the low half is unsigned
		{1, 0, (1 << 32) * 100 * time.Nanosecond},           // about 7 min
		{2, 5, ((2 << 32) + 5) * 100 * time.Nanosecond},
	} {
		if got := filetimeSpan(tc.high, tc.low); got != tc.want {
			t.Errorf("filetimeSpan(%#x, %#x) = %v, want %v", tc.high, tc.low, got, tc.want)
		}
	}
}
