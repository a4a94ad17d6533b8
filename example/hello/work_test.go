package hello

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/cputime"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

func withWork(values ...string) context.Context {
	md := metadata.MD{}
	for _, v := range values {
		md.Append(WorkKey, v)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestWorkUnits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string // nil: no key at all
		want   int
	}{
		{"absent", nil, 0},
		{"empty", []string{""}, 0},
		{"plain", []string{"1500"}, 1500},
		{"spaces", []string{" 42 "}, 42},
		{"plus sign", []string{"+7"}, 7},
		{"zero", []string{"0"}, 0},
		{"negative", []string{"-5"}, 0},
		{"not a number", []string{"lots"}, 0},
		{"trailing junk", []string{"12abc"}, 0},
		{"float", []string{"1e3"}, 0},
		{"hex", []string{"0x10"}, 0},
		{"at the cap", []string{strconv.Itoa(MaxWork)}, MaxWork},
		{"over the cap", []string{strconv.Itoa(MaxWork + 1)}, MaxWork},
		{"beyond int64", []string{"99999999999999999999999"}, MaxWork},
		{"beyond int64, negative", []string{"-99999999999999999999999"}, 0},
		{"first value counts", []string{"3", "900"}, 3},
		{"malformed first value", []string{"x", "900"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.values != nil {
				ctx = withWork(tc.values...)
			}
			if got := WorkUnits(ctx); got != tc.want {
				t.Errorf("WorkUnits(%q) = %d, want %d", tc.values, got, tc.want)
			}
		})
	}
}

// cpuTime is the CPU time, user and system, this process has used; a test
// that reads it fails where the platform does not say (0).
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	d := cputime.Process()
	if d == 0 {
		t.Fatal("no reading of the process's CPU time on this platform")
	}
	return d
}

// cpuPerCall is the process CPU time per Hi call with the given metadata
// values, over calls calls.
func cpuPerCall(t *testing.T, calls int, values ...string) time.Duration {
	t.Helper()
	s := &Service{Name: "test"}
	ctx := context.Background()
	if values != nil {
		ctx = withWork(values...)
	}
	req := &hellov1.HiRequest{ToWho: "x"}
	start := cpuTime(t)
	for range calls {
		if _, err := s.Hi(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	return (cpuTime(t) - start) / time.Duration(calls)
}

// TestHiWorkCostsCPU checks that rotor-work costs what it says: a call with
// work uses far more CPU than one without, a malformed value costs nothing,
// and a value over the cap costs no more than MaxWork units.
func TestHiWorkCostsCPU(t *testing.T) {
	none := cpuPerCall(t, 2000, nil...)
	malformed := cpuPerCall(t, 2000, "20000x")
	const units = 50_000
	work := cpuPerCall(t, 4, strconv.Itoa(units))
	perUnit := work / units
	t.Logf("CPU per call: no work %v, malformed %v, %d units %v (%v a unit)", none, malformed, units, work, perUnit)
	// 50,000 units take milliseconds; a call without them microseconds.
	if work < 20*none || work < time.Millisecond {
		t.Errorf("a call with %d work units used %v of CPU, one without %v: want at least 20 times as much and 1 ms", units, work, none)
	}
	if malformed > 2*none+20*time.Microsecond {
		t.Errorf("a call with a malformed %s used %v of CPU, one without %v: want about the same", WorkKey, malformed, none)
	}
	over := cpuPerCall(t, 1, strconv.Itoa(100*MaxWork))
	t.Logf("a call asking for %d units: %v", 100*MaxWork, over)
	if limit := 2 * MaxWork * perUnit; over > limit {
		t.Errorf("a call asking for 100 × MaxWork units used %v of CPU, want at most %v (2 × MaxWork units): the cap does not hold", over, limit)
	}
}

// TestHiWorkStopsWhenCancelled checks that a cancelled call does not burn
// its remaining work.
func TestHiWorkStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(withWork(strconv.Itoa(MaxWork)))
	cancel()
	s := &Service{Name: "test"}
	start := cpuTime(t)
	_, err := s.Hi(ctx, &hellov1.HiRequest{})
	used := cpuTime(t) - start
	if status.Code(err) != codes.Canceled {
		t.Errorf("a cancelled call with work returned %v, want Canceled", err)
	}
	// workCheckEvery units at most: well under 10 ms on any machine.
	if used > 10*time.Millisecond {
		t.Errorf("a cancelled call used %v of CPU, want it to stop within %d units", used, workCheckEvery)
	}
}
