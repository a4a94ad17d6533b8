package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFleetFlags(t *testing.T) {
	tests := []struct {
		args               []string
		pods, add          int
		rate               float64
		scaleAt, duration  time.Duration
		wantErr            string
		conns, scaledTo    int
		callsPerSecondWant float64
	}{
		{args: nil, pods: 50, add: 10, rate: 2, scaleAt: 30 * time.Second, duration: 2 * time.Minute, scaledTo: 60, conns: 240, callsPerSecondWant: 480},
		{args: []string{"-fleet-pods", "200"}, pods: 200, add: 20, rate: 2, scaleAt: 30 * time.Second, duration: 2 * time.Minute, scaledTo: 220, conns: 880, callsPerSecondWant: 1760},
		{args: []string{"-fleet-pods", "100", "-fleet-rate", "1"}, pods: 100, add: 10, rate: 1, scaleAt: 30 * time.Second, duration: 2 * time.Minute, scaledTo: 110, conns: 440, callsPerSecondWant: 440},
		{args: []string{"-fleet-pods", "8", "-fleet-add", "1"}, pods: 8, add: 1, rate: 2, scaleAt: 30 * time.Second, duration: 2 * time.Minute, scaledTo: 9, conns: 36, callsPerSecondWant: 72},
		{args: []string{"-short"}, pods: 8, add: 4, rate: 2, scaleAt: 31 * time.Second, duration: 45 * time.Second, scaledTo: 12, conns: 48, callsPerSecondWant: 96},
		{args: []string{"-short", "-fleet-pods", "20"}, pods: 20, add: 4, rate: 2, scaleAt: 31 * time.Second, duration: 45 * time.Second, scaledTo: 24, conns: 96, callsPerSecondWant: 192},
		{args: []string{"-short", "-scale-at", "5s", "-duration", "15s"}, pods: 8, add: 4, rate: 2, scaleAt: 5 * time.Second, duration: 15 * time.Second, scaledTo: 12, conns: 48, callsPerSecondWant: 96},
		{args: []string{"-scale-at", "40s", "-duration", "2m"}, pods: 50, add: 10, rate: 2, scaleAt: 40 * time.Second, duration: 2 * time.Minute, scaledTo: 60, conns: 240, callsPerSecondWant: 480},
		{args: []string{"-fleet-pods", "240", "-fleet-add", "5"}, pods: 240, add: 5, rate: 2, scaleAt: 30 * time.Second, duration: 2 * time.Minute, scaledTo: 245, conns: 980, callsPerSecondWant: 1960},
		{args: []string{"-fleet-pods", "240"}, wantErr: "-fleet-add 24"},
		{args: []string{"-fleet-pods", "-3"}, wantErr: "-fleet-pods -3"},
		{args: []string{"-fleet-rate", "-1"}, wantErr: "-fleet-rate -1"},
		{args: []string{"-scale-at", "130s"}, wantErr: "set -scale-at below -duration"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := parseFlags(append([]string{"-scenario", "fleet"}, tt.args...), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := o.p
			if p.FleetPods != tt.pods || p.FleetAdd != tt.add || p.FleetConnRate != tt.rate || p.FleetScaleAt != tt.scaleAt || p.FleetDuration != tt.duration {
				t.Errorf("pods %d add %d rate %v at %s for %s; want %d %d %v %s %s",
					p.FleetPods, p.FleetAdd, p.FleetConnRate, p.FleetScaleAt, p.FleetDuration, tt.pods, tt.add, tt.rate, tt.scaleAt, tt.duration)
			}
			sc, _ := findScenario("fleet")
			sc = sc.sized(p)
			if sc.replicas != tt.pods || sc.scaleTo != tt.scaledTo || sc.connsOf(p) != tt.conns || sc.rateOf(p) != tt.callsPerSecondWant ||
				sc.at(p) != tt.scaleAt || sc.duration(p) != tt.duration || sc.via != viaClusterIP {
				t.Errorf("sized: %d → %d pods, %d conns, %v calls/s, at %s for %s via %s; want %d → %d, %d, %v, %s, %s via clusterip",
					sc.replicas, sc.scaleTo, sc.connsOf(p), sc.rateOf(p), sc.at(p), sc.duration(p), sc.via,
					tt.pods, tt.scaledTo, tt.conns, tt.callsPerSecondWant, tt.scaleAt, tt.duration)
			}
		})
	}
}

// TestFleetSizedLeavesOtherScenarios checks that the fleet flags change no
// other scenario.
func TestFleetSizedLeavesOtherScenarios(t *testing.T) {
	p := defaultParams(false)
	for _, sc := range scenarios {
		if sc.fleet {
			continue
		}
		got := sc.sized(p)
		if got.replicas != sc.replicas || got.scaleTo != sc.scaleTo || got.connsOf(p) != sc.connsOf(p) ||
			got.rateOf(p) != sc.rateOf(p) || got.duration(p) != sc.duration(p) || got.at(p) != sc.at(p) {
			t.Errorf("%s: sized changed it", sc.name)
		}
	}
}

func TestFleetConnsPerPodAtEnd(t *testing.T) {
	conns := []connRecord{
		{ID: "0/a", Client: 0, Pod: "p0", From: 0, Calls: series{2, 2, 2, 2, 2, 2, 2, 2, 2, 2}},
		// Client 1 moved from p0 to p1 at second 5.
		{ID: "1/a", Client: 1, Pod: "p0", From: 0, Calls: series{2, 2, 2, 2, 2, 1}},
		{ID: "1/b", Client: 1, Pod: "p1", From: 5, Calls: series{1, 2, 2, 2, 2}},
		// Client 2 moved in the last second: its newer connection counts.
		{ID: "2/a", Client: 2, Pod: "p0", From: 0, Calls: series{2, 2, 2, 2, 2, 2, 2, 2, 2, 1}},
		{ID: "2/b", Client: 2, Pod: "p2", From: 9, Calls: series{1}},
		// Client 3 stopped calling long before the end: it counts nowhere.
		{ID: "3/a", Client: 3, Pod: "p0", From: 0, Calls: series{2, 2}},
		// Client 4 is at a pod that is gone.
		{ID: "4/a", Client: 4, Pod: "old", From: 0, Calls: series{2, 2, 2, 2, 2, 2, 2, 2, 2, 2}},
	}
	maxConns, mean := connsPerPodAtEnd(conns, []string{"p0", "p1", "p2", "p3"}, 10)
	if maxConns != 1 || mean != 0.75 {
		t.Errorf("max %d mean %v, want 1 and 0.75 (p0, p1, p2 one each, p3 none)", maxConns, mean)
	}
	conns = append(conns, connRecord{ID: "5/a", Client: 5, Pod: "p1", From: 0, Calls: series{2, 2, 2, 2, 2, 2, 2, 2, 2, 2}})
	if maxConns, mean = connsPerPodAtEnd(conns, []string{"p0", "p1", "p2", "p3"}, 10); maxConns != 2 || mean != 1 {
		t.Errorf("max %d mean %v, want 2 and 1", maxConns, mean)
	}
	if maxConns, mean = connsPerPodAtEnd(nil, nil, 10); maxConns != 0 || mean != 0 {
		t.Errorf("no pods: max %d mean %v, want 0 and 0", maxConns, mean)
	}
}

// TestFleetAnalyze checks the churn and CPU figures of a made-up run: pods
// a and b, then c from second 10, which gets its fair third of the calls
// from second 12 on. The trailing 5 s share first reaches 0.8 × 1/3 in the
// window of seconds 11-15, so the fair state starts at second 16, and of
// the dials only those at 20 and 30 are after it.
func TestFleetAnalyze(t *testing.T) {
	r := run{
		Scenario: "fleet", Mode: "fair-share", Duration: 40,
		Pods:      []podInfo{{Name: "a"}, {Name: "b", Index: 1}, {Name: "c", Index: 2, New: true}},
		FinalPods: []string{"a", "b", "c"},
		Events:    []event{{Label: "scale 2→3", Kind: eventScale, At: 9.5, Done: 10}},
		Fleet:     &fleetRun{Pods: 2, ScaledTo: 3, ConnRate: 2, CPUs: 2, PastGrowthS: pastGrowth(2, time.Second).Seconds()},
	}
	lines := secondsWithDials(40, map[int]int{0: 12, 6: 2, 12: 4, 20: 1, 30: 2}, func(l *loadLine) {
		l.Calls = map[string]int{"a": 15, "b": 15}
		if l.T >= 12 {
			l.Calls = map[string]int{"a": 10, "b": 10, "c": 10}
		}
		l.CPUMs = map[string]float64{"a": 10, "b": 20, "c": 30}
		r.Fleet.LoadGenMs = append(r.Fleet.LoadGenMs, 50)
		r.Fleet.HostCores = append(r.Fleet.HostCores, 1.5)
	})
	r.Fleet.HostCores[39] = -1 // unknown: left out
	r.fill(lines)
	s := r.Summary
	if s.TimeToFair == nil || *s.TimeToFair != 6 {
		t.Fatalf("time to fair %v, want 6 s", fmtSecs(s.TimeToFair))
	}
	f := s.Fleet
	if f == nil {
		t.Fatal("no fleet summary")
	}
	if want := (churn{Conns: 3, Seconds: 24, PerPodMinute: 2.5}); f.Moved != want {
		t.Errorf("moved after fair %+v, want %+v", f.Moved, want)
	}
	// The run ends 30 s after the scale event, before the fleet is past
	// its growth (33 s after it): no figure.
	if f.MovedPastGrowth != (churn{}) {
		t.Errorf("moved past growth %+v in a run that ended within it, want none", f.MovedPastGrowth)
	}
	// The second half of the 9.5 s before the scale event: seconds 5 to 8,
	// 2 connections of 2 pods in 4 s.
	if want := (churn{Conns: 2, Seconds: 4, PerPodMinute: 15}); f.MovedBefore != want {
		t.Errorf("moved before the scale event %+v, want %+v", f.MovedBefore, want)
	}
	if f.ServerCPUMean != 2 || f.ServerCPUMax != 3 || f.LoadGenCPU != 5 || f.HostCores != 1.5 {
		t.Errorf("cpu per pod %v%% (max %v%%), load generator %v%%, host %v cores; want 2, 3, 5, 1.5",
			f.ServerCPUMean, f.ServerCPUMax, f.LoadGenCPU, f.HostCores)
	}
	var b strings.Builder
	writeFleetTable(&b, &result{Runs: []run{r}})
	if !strings.Contains(b.String(), "2.50 (24 s)") || !strings.Contains(b.String(), "2→3") {
		t.Errorf("fleet table lacks the churn or the pods:\n%s", b.String())
	}
	// The report's header points to the fleet table only when there is one.
	const seeFleet = "see Fleet below"
	for _, tc := range []struct {
		runs []run
		want bool
	}{{[]run{r}, true}, {[]run{{Scenario: "seed-clusterip", Mode: "fair-share"}}, false}} {
		var h strings.Builder
		writeTable(&h, &result{Params: defaultParams(true), Runs: tc.runs})
		if got := strings.Contains(h.String(), seeFleet); got != tc.want {
			t.Errorf("runs %s: header says %q: %v, want %v", tc.runs[0].Scenario, seeFleet, got, tc.want)
		}
	}

	// Never fair: no churn figure.
	r.Pods[2].New = false
	r.Pods = append(r.Pods, podInfo{Name: "d", Index: 3, New: true})
	r.FinalPods = append(r.FinalPods, "d")
	r.fill(lines)
	if f := r.Summary.Fleet; r.Summary.TimeToFair != nil || f.Moved != (churn{}) {
		t.Errorf("a run that never reached fair: time to fair %s, moved after %+v; want never and none",
			fmtSecs(r.Summary.TimeToFair), f.Moved)
	}
}

// TestFleetPastGrowth checks when a fleet is past growth (pastGrowth),
// which modes have a figure, and the churn counted past growth: in a run
// of 60 s whose scale event is done at 9.2 s and whose fleet is past
// growth 35 s after it, the dials from second 45 (the first whole second
// from 44.2 s) to the end, per pod per minute, in the record and in the
// table; the dials in second 44 are left out; and a record without the
// time (before 4f797a2) has no figure.
func TestFleetPastGrowth(t *testing.T) {
	for _, tc := range []struct {
		pods     int
		interval time.Duration
		want     time.Duration
	}{
		{50, time.Second, 34500 * time.Millisecond}, // 50 → 60 in the lab: 50 × 50 ms
		{200, time.Second, 42 * time.Second},        // 200 → 220: 10 s
		{8, 5 * time.Second, 37 * time.Second},      // the poll's own interval
	} {
		if got := pastGrowth(tc.pods, tc.interval); got != tc.want {
			t.Errorf("pastGrowth(%d pods, %s) = %s, want %s", tc.pods, tc.interval, got, tc.want)
		}
	}
	// Only the modes that run fair share have a growth grace.
	for _, m := range modes {
		if runsIt := slices.Contains(m.args(defaultParams(false), "dns://x/y"), "-fair-share"); m.fairShare != runsIt {
			t.Errorf("mode %s: fairShare %v, but its server flags run fair share: %v", m.name, m.fairShare, runsIt)
		}
	}
	r := run{
		Scenario: "fleet", Mode: "fair-share", Duration: 60,
		Pods:      []podInfo{{Name: "a"}, {Name: "b", Index: 1}, {Name: "c", Index: 2, New: true}},
		FinalPods: []string{"a", "b", "c"},
		Events:    []event{{Label: "scale 2→3", Kind: eventScale, At: 9, Done: 9.2}},
		Fleet:     &fleetRun{Pods: 2, ScaledTo: 3, ConnRate: 2, CPUs: 2, PastGrowthS: 35},
	}
	lines := secondsWithDials(60, map[int]int{44: 5, 45: 3, 59: 1}, func(l *loadLine) {
		l.Calls = map[string]int{"a": 10, "b": 10, "c": 10}
	})
	r.fill(lines)
	f := r.Summary.Fleet
	if f == nil {
		t.Fatal("no fleet summary")
	}
	// 4 connections, 3 pods, 15 s: 4 / 3 / 0.25 min.
	if want := (churn{Conns: 4, Seconds: 15, PerPodMinute: 5.333}); f.MovedPastGrowth != want {
		t.Errorf("moved past growth %+v, want %+v", f.MovedPastGrowth, want)
	}
	var b strings.Builder
	writeFleetTable(&b, &result{Runs: []run{r}})
	if !strings.Contains(b.String(), "5.33 (15 s)") {
		t.Errorf("fleet table lacks the churn past growth:\n%s", b.String())
	}
	// A record from before the field: no figure, rather than one counted
	// from the scale event.
	r.Fleet.PastGrowthS = 0
	r.fill(lines)
	if f := r.Summary.Fleet; f.MovedPastGrowth != (churn{}) {
		t.Errorf("moved past growth %+v without PastGrowthS, want none", f.MovedPastGrowth)
	}
}

// secondsWithDials returns the per-second records of an n-second run, the
// clients dialling dials[s] connections in second s; fill sets the rest of
// each record, in order.
func secondsWithDials(n int, dials map[int]int, fill func(*loadLine)) []loadLine {
	lines := make([]loadLine, n)
	for s := range lines {
		lines[s] = loadLine{Type: "second", T: s, Dials: dials[s]}
		fill(&lines[s])
	}
	return lines
}

func TestFleetHostBusySeconds(t *testing.T) {
	a, err := hostBusySeconds()
	if err != nil {
		t.Skip(err) // not Linux
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		// Spin until the host's busy time moves: this loop is busy time.
		if b, err := hostBusySeconds(); err != nil || b < a {
			t.Fatalf("busy seconds went from %v to %v (%v)", a, b, err)
		} else if b > a {
			return
		}
	}
	t.Errorf("the host's busy time did not grow in 2 s of a spinning test")
}

// TestFleetScaleUp scales a small fleet, 8 → 12 pods with 48 client
// connections, in mode fair-share: no call may fail, and fair share must
// move some connections to the new pods (without it, conntrack keeps them
// all on the old pods).
func TestFleetScaleUp(t *testing.T) {
	r := runShort(t, "fleet", "fair-share")
	if got := len(newPods(r)); got != 4 || len(r.FinalPods) != 12 {
		t.Fatalf("%d new pods, %d at the end; want 4 and 12 (pods %+v)", got, len(r.FinalPods), r.Pods)
	}
	if r.Clients != 48 {
		t.Errorf("%d client connections, want 48", r.Clients)
	}
	if r.Summary.Failed != 0 {
		t.Errorf("%d calls failed, want 0: %v", r.Summary.Failed, r.Summary.FailedByCode)
	}
	if r.Summary.NewPodCalls == 0 {
		t.Errorf("the new pods got no calls (per pod: %v)", r.Summary.PerPod)
	}
	if r.Fleet == nil || r.Summary.Fleet == nil {
		t.Fatal("the run has no fleet record")
	}
	if n := len(r.Fleet.HostCores); n == 0 {
		t.Error("no host CPU samples")
	}
}

// TestFleetRunsEmulatedOnly checks that -cluster real with the fleet
// scenario is refused at once, with what to change.
func TestFleetRunsEmulatedOnly(t *testing.T) {
	_, err := parseFlags([]string{"-cluster", "real", "-scenario", "seed-clusterip,fleet"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "leave out -cluster real") {
		t.Errorf("-cluster real -scenario fleet: error %v, want one that says to leave out -cluster real", err)
	}
	if _, err := parseFlags([]string{"-scenario", "fleet"}, io.Discard); err != nil {
		t.Errorf("-scenario fleet in the emulated lab: %v", err)
	}
}

// everySecond calls f for each second from 0 to n, at once for the seconds
// already past, and stops when ctx ends.
func TestEverySecond(t *testing.T) {
	var got []int
	everySecond(context.Background(), time.Now().Add(-time.Minute), 3, func(k int) { got = append(got, k) })
	if !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("seconds past: called for %v, want [0 1 2 3]", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	everySecond(ctx, time.Now().Add(time.Hour), 3, func(int) { called = true })
	if called {
		t.Error("ctx ended before the first second: f was called")
	}
}
