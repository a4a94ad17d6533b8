package server

import (
	"context"
	"testing"
	"time"
)

// TestPacedKeepsToTheSchedule gives paced a clock whose every wait ends late,
// as timers do on a busy host: each send must go out at its time or at most
// one lateness after it, never later, however many sends there are, and
// never early.
func TestPacedKeepsToTheSchedule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		spread time.Duration
		late   time.Duration
	}{
		{"10,000 over 5s, waits 1ms late", 10000, 5 * time.Second, time.Millisecond},
		{"10,000 over 5s, waits on time", 10000, 5 * time.Second, 0},
		{"3 over 1s, waits 300ms late", 3, time.Second, 300 * time.Millisecond},
		{"one", 1, 5 * time.Second, time.Millisecond},
		{"none", 0, 5 * time.Second, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			clock := start
			now := func() time.Time { return clock }
			wait := func(_ context.Context, d time.Duration) bool {
				if d > 0 {
					clock = clock.Add(d + tc.late)
				}
				return true
			}
			var sent []int
			paced(context.Background(), tc.n, tc.spread, now, wait, func(i int) {
				sent = append(sent, i)
				var due time.Duration
				if tc.n > 1 {
					due = time.Duration(i) * (tc.spread / time.Duration(tc.n-1))
				}
				if at := clock.Sub(start); at < due || at > due+tc.late {
					t.Fatalf("send %d at %v; want it from its time %v to %v after", i, at, due, tc.late)
				}
			})
			if len(sent) != tc.n {
				t.Fatalf("%d sends, want %d", len(sent), tc.n)
			}
			for i, v := range sent {
				if v != i {
					t.Fatalf("send %d was of %d; want them in order", i, v)
				}
			}
		})
	}
}

// TestPacedStopsWithItsContext checks that paced sends nothing more once a
// wait reports that its context ended.
func TestPacedStopsWithItsContext(t *testing.T) {
	waits := 0
	wait := func(context.Context, time.Duration) bool {
		waits++
		return waits < 3 // the third wait sees the context end
	}
	var sent []int
	paced(context.Background(), 10, time.Second, time.Now, wait, func(i int) { sent = append(sent, i) })
	if len(sent) != 3 {
		t.Fatalf("sent %v; want the first 3, then nothing", sent)
	}
}
