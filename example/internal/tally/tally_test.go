package tally

import "testing"

func TestCounts(t *testing.T) {
	if got, want := Counts(map[string]int{"Unavailable": 3, "DeadlineExceeded": 1}), "DeadlineExceeded 1, Unavailable 3"; got != want {
		t.Errorf("Counts = %q, want %q", got, want)
	}
	if got := Counts(map[string]int64(nil)); got != "" {
		t.Errorf("Counts(nil) = %q, want empty", got)
	}
}
