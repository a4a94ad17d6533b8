package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary run as the report's children: the report
// starts its own executable again, which here is the test binary.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// TestReport runs the whole report at 200 connections, over two client
// processes, and checks that it measured what it says: every connection
// established in every phase, no failed call, a mass rotate that rotated
// and replaced them all, and a table with both servers. It asserts nothing
// about time or memory: those are the report's to show.
func TestReport(t *testing.T) {
	cfg := config{
		N:         200,
		PerClient: 120,
		Sources:   4,
		Settle:    100 * time.Millisecond,
		Warm:      time.Second,
		CPUWindow: 1200 * time.Millisecond,
		Spread:    time.Second,
		Ages:      []time.Duration{2 * time.Second},
		PlainAges: []time.Duration{2 * time.Second},
		Bursts:    2,
		Readings:  3,
		Profiles:  t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg, t.Output())
	if err != nil {
		t.Fatal(err)
	}
	if rep.clients != 2 {
		t.Errorf("%d client processes, want 2 (200 connections, at most 120 each)", rep.clients)
	}
	if len(rep.servers) != 2 || rep.servers[0].mode != "plain" || rep.servers[1].mode != "rotor" {
		t.Fatalf("servers %v, want plain and rotor", rep.servers)
	}
	for _, s := range rep.servers {
		for i, m := range slices.Concat(s.idleReadings, s.activeReadings) {
			if m.Conns != cfg.N {
				t.Errorf("%s: reading %d of %d (idle, then 1 call/s): the server held %d connections, want %d", s.mode, i+1, 2*cfg.Readings, m.Conns, cfg.N)
			}
		}
		if s.idle != medianSample(s.idleReadings) || s.active != medianSample(s.activeReadings) {
			t.Errorf("%s: the idle and 1 call/s figures are not the median of their readings", s.mode)
		}
		if s.idle.Goroutines <= s.base.Goroutines {
			t.Errorf("%s: %d goroutines with %d connections, %d before: a connection costs none?", s.mode, s.idle.Goroutines, cfg.N, s.base.Goroutines)
		}
		if s.calls.OK == 0 || s.calls.Failed != 0 {
			t.Errorf("%s: %d calls made at 1 call/s, %d failed%s", s.mode, s.calls.OK, s.calls.Failed, codes(s.calls))
		}
		if len(s.bursts) != cfg.Bursts {
			t.Errorf("%s: %d mass reconnects, want %d", s.mode, len(s.bursts), cfg.Bursts)
		}
		if len(s.idleReadings) != cfg.Readings || len(s.activeReadings) != cfg.Readings {
			t.Errorf("%s: %d idle and %d active memory readings, want %d each", s.mode, len(s.idleReadings), len(s.activeReadings), cfg.Readings)
		}
		for i, b := range s.bursts {
			if b.ready != cfg.N || b.rate() <= 0 || b.rate90() <= 0 {
				t.Errorf("%s: mass reconnect %d: %d of %d connections Ready (rate %.0f/s)", s.mode, i+1, b.ready, cfg.N, b.rate())
			}
		}
		for _, at := range []string{"idle", "active"} {
			if _, err := os.Stat(cfg.Profiles + "/" + s.mode + "-" + at + ".pprof"); err != nil {
				t.Errorf("%s: no %s heap profile: %v", s.mode, at, err)
			}
		}
	}
	if r := rep.servers[1].rotate; r == nil {
		t.Error("rotor: no mass rotate")
	} else {
		if r.rotated != cfg.N || r.clients != cfg.N {
			t.Errorf("mass rotate: rotated %d, %d client connections after, want %d", r.rotated, r.clients, cfg.N)
		}
		if r.calls.OK == 0 || r.calls.Failed != 0 {
			t.Errorf("mass rotate: %d calls made, %d failed%s", r.calls.OK, r.calls.Failed, codes(r.calls))
		}
	}
	if len(rep.ages) != 2 {
		t.Fatalf("%d age runs, want 2", len(rep.ages))
	}
	for _, a := range rep.ages {
		if a.cpu.rotations == 0 || a.calls.OK == 0 || a.calls.Failed != 0 {
			t.Errorf("%s, age %v: %d rotations in the window, %d calls made, %d failed%s", a.mode, a.age, a.cpu.rotations, a.calls.OK, a.calls.Failed, codes(a.calls))
		}
	}
	for _, s := range rep.servers {
		if s.cpu.rotations != 0 {
			t.Errorf("%s, age Off: %d connections dialled in the CPU window, want none", s.mode, s.cpu.rotations)
		}
	}

	var out bytes.Buffer
	rep.write(&out)
	t.Logf("the report:\n%s", out.String())
	for _, want := range []string{"item  measure", "plain:", "rotor:", "idle: RSS per conn", "1 call/s: goroutines per conn", "mass reconnect", "4 age rotation", "5 mass rotate"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q", want)
		}
	}
}

func TestEstimateRotation(t *testing.T) {
	idle := cpuWindow{window: 20 * time.Second, core: 0.02}
	off := cpuWindow{window: time.Minute, core: 0.20, se: 0.01, calls: 600000}
	ages := []ageResult{
		{mode: "plain", age: 30 * time.Second, cpu: cpuWindow{window: time.Minute, core: 0.5, se: 0.01, calls: 600000, rotations: 30000}},
		{mode: "rotor", age: 30 * time.Second, cpu: cpuWindow{window: time.Minute, core: 0.26, se: 0.01, calls: 600000, rotations: 20000}},
		{mode: "rotor", age: 5 * time.Minute, cpu: cpuWindow{window: time.Minute, core: 0.21, se: 0.01, calls: 600000, rotations: 2000}},
	}
	e, ok := estimateRotation(idle, off, ages, 10000)
	if !ok {
		t.Fatal("no estimate")
	}
	// 0.06 of a core for 60 s is 3.6 s over 20,000 rotations: 180 µs each;
	// 10,000 of them per 5 min is 6 ms a second.
	if e.from != 30*time.Second || e.perRot != 180*time.Microsecond || math.Abs(e.core-0.006) > 1e-9 {
		t.Errorf("estimate %+v, want 180µs per rotation from the 30s run, 0.006 of a core", e)
	}
	if math.Abs(e.directCore-0.01) > 1e-9 {
		t.Errorf("direct %v, want 0.01", e.directCore)
	}
	if _, ok := estimateRotation(idle, off, ages[:1], 10000); ok {
		t.Error("an estimate without a rotor age run")
	}
}

func TestRotationCPU(t *testing.T) {
	idle := cpuWindow{window: 20 * time.Second, core: 0.10}
	off := cpuWindow{window: time.Minute, core: 0.70, calls: 600000} // 0.6 of a core for 10,000 calls/s
	for _, c := range []struct {
		name string
		a    cpuWindow
		want float64
	}{
		{"every call made", cpuWindow{window: time.Minute, core: 0.75, calls: 600000}, 0.05},
		{"a tenth of the calls not made", cpuWindow{window: time.Minute, core: 0.75, calls: 540000}, 0.11},
		{"no rotation cost", cpuWindow{window: time.Minute, core: 0.70, calls: 600000}, 0},
	} {
		if got, _ := rotationCPU(c.a, idle, off); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: rotation CPU %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		n, per int
		want   []int
	}{
		{10000, 9000, []int{5000, 5000}},
		{200, 120, []int{100, 100}},
		{9000, 9000, []int{9000}},
		{7, 3, []int{3, 2, 2}},
	} {
		got := split(c.n, c.per)
		if !slices.Equal(got, c.want) {
			t.Errorf("split(%d, %d) = %v, want %v", c.n, c.per, got, c.want)
		}
	}
}

// A memory figure is the median of its readings, field by field: one
// reading taken while buffers were held, high or low, does not decide it.
func TestMedianSample(t *testing.T) {
	r := func(rss int64, heap uint64, g int) memSample {
		return memSample{RSS: rss, HeapInuse: heap, StackInuse: heap / 2, Goroutines: g, Conns: 10}
	}
	got := medianSample([]memSample{r(500, 90, 3), r(100, 10, 1), r(300, 50, 2)})
	if want := (memSample{RSS: 300, HeapInuse: 50, StackInuse: 25, Goroutines: 2, Conns: 10}); got != want {
		t.Errorf("median of three: %+v, want %+v", got, want)
	}
	// Field by field: the median RSS and the median heap may come from
	// different readings.
	got = medianSample([]memSample{r(100, 90, 1), r(300, 10, 2), r(200, 50, 3)})
	if got.RSS != 200 || got.HeapInuse != 50 || got.Goroutines != 2 {
		t.Errorf("field by field: %+v, want RSS 200, heap 50, 2 goroutines", got)
	}
	// An even count takes the upper of the two middle readings.
	if got = medianSample([]memSample{r(100, 10, 1), r(200, 20, 2)}); got.RSS != 200 || got.HeapInuse != 20 {
		t.Errorf("median of two: %+v, want the upper one", got)
	}
	if got = medianSample([]memSample{r(7, 8, 9)}); got != r(7, 8, 9) {
		t.Errorf("one reading: %+v, want it as it is", got)
	}
	// The connections are the fewest any reading counted: a reading that
	// lost some, or could not count them (-1), shows.
	lost := r(300, 50, 2)
	lost.Conns = 7
	if got = medianSample([]memSample{r(100, 10, 1), lost, r(200, 20, 3)}); got.Conns != 7 {
		t.Errorf("connections %d, want 7, the fewest", got.Conns)
	}
}

// -readings outside 1 to 60 fails, naming the flag and the range.
func TestReadingsRange(t *testing.T) {
	for _, n := range []int{0, -1, 61} {
		cfg := defaultConfig()
		cfg.Readings = n
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "-readings") || !strings.Contains(err.Error(), "1 to 60") {
			t.Errorf("-readings %d: %v, want an error naming -readings and 1 to 60", n, err)
		}
	}
	if err := defaultConfig().validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}
