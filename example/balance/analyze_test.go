package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistQuantile(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if math.Abs(float64(got-tc.want))/float64(tc.want) > 0.02 {
			t.Errorf("quantile(%v) = %v, want %v ± 2%%", tc.q, got, tc.want)
		}
	}
	var empty hist
	if got := empty.quantile(0.5); got != 0 {
		t.Errorf("empty quantile = %v, want 0", got)
	}
	var merged hist
	merged.merge(h)
	merged.merge(h)
	if merged.n != 2000 || merged.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merged n = %d, p50 %v; want 2000, %v", merged.n, merged.quantile(0.5), h.quantile(0.5))
	}
}

func TestAnalyze(t *testing.T) {
	r := run{
		Scenario: "seed", Mode: "m",
		Pods:      []podInfo{{Name: "a"}, {Name: "b"}, {Name: "c", New: true}},
		FinalPods: []string{"a", "b", "c"},
		Events:    []event{{Kind: eventScale, At: 1.8, Done: 2.0}},
	}
	var lines []loadLine
	for s := range 10 {
		l := loadLine{Type: "second", T: s, Calls: map[string]int{"a": 5, "b": 5}, Dials: 1, Latency: map[int]uint64{bucketOf(time.Millisecond): 10}}
		if s >= 4 {
			l.Calls = map[string]int{"a": 3, "b": 3, "c": 4}
		}
		if s == 6 {
			l.Failed = map[string]int{"Unavailable": 2}
		}
		lines = append(lines, l)
	}
	r.fill(lines)
	s := r.Summary
	if s.Calls != 100 || s.Failed != 2 || s.FailedByCode["Unavailable"] != 2 || s.Dials != 10 {
		t.Errorf("calls %d failed %d %v dials %d; want 100, 2 Unavailable, 10", s.Calls, s.Failed, s.FailedByCode, s.Dials)
	}
	if s.NewPodCalls != 24 || s.PerPod["c"] != 24 || s.PerPod["a"] != 38 {
		t.Errorf("new pod calls %d, per pod %v; want 24, a 38, c 24", s.NewPodCalls, s.PerPod)
	}
	if math.Abs(s.FairShare-1.0/3) > 1e-9 {
		t.Errorf("fair share %v, want 1/3", s.FairShare)
	}
	// Seconds 2-6 (0-5 s after the event): 0, 0, 4, 4, 4 of 10 each.
	if len(s.NewShare) == 0 || s.NewShare[0].Share != 0.24 {
		t.Errorf("new share windows %+v, want the first at 0.24", s.NewShare)
	}
	// 1 s share is 0.4 ≥ 0.8/3 from second 4 on: time = 5 - 2.
	if s.TimeToFair1s == nil || *s.TimeToFair1s != 3 {
		t.Errorf("time to fair (1 s) %v, want 3s", fmtSecs(s.TimeToFair1s))
	}
	// Imbalance since the event, seconds 2-9: a 28, b 28, c 24; 28 / 26.67.
	if math.Abs(s.Imbalance-1.05) > 0.001 || s.ImbalanceSeconds != 8 {
		t.Errorf("imbalance %v over %d s, want 1.05 over 8 s", s.Imbalance, s.ImbalanceSeconds)
	}
	if s.P50Ms < 0.98 || s.P50Ms > 1.02 {
		t.Errorf("p50 %v ms, want 1 ms", s.P50Ms)
	}
}

func TestCollectorEmitsEverySecondOnce(t *testing.T) {
	origin := time.Now().Add(-3 * time.Second)
	c := newCollector(origin, time.Minute)
	// A call that started in the current second and is still running must
	// hold back its second and every later one.
	st, started := c.begin()
	c.dialed(nil)
	lines := c.ready(time.Now(), false)
	if len(lines) != 3 {
		t.Fatalf("ready emitted %d seconds, want the 3 that have passed", len(lines))
	}
	for i, l := range lines {
		if l.T != i || l.Type != "second" {
			t.Errorf("line %d = %+v", i, l)
		}
	}
	c.end(st, started, callInfo{pod: "pod-a"}, nil)
	if got := c.ready(time.Now(), false); len(got) != 0 {
		t.Errorf("the current second was emitted before it ended: %+v", got)
	}
	final := c.ready(time.Now(), true)
	if len(final) != 1 || final[0].T != 3 || final[0].Calls["pod-a"] != 1 || final[0].Dials != 1 {
		t.Errorf("final lines %+v, want second 3 with one call and one dial", final)
	}
}

func TestCollectorLateCallCountsInLastSecond(t *testing.T) {
	// A 2 s run whose end has passed: a worker's call scheduled just
	// before the end may start after it, and after a tick found the last
	// second with nothing in flight. It must count in second 1, which a
	// run's record keeps, not in a second 2 that it drops.
	c := newCollector(time.Now().Add(-3*time.Second), 2*time.Second)
	if lines := c.ready(time.Now(), false); len(lines) != 1 || lines[0].T != 0 {
		t.Fatalf("ready before the end emitted %+v, want second 0 only (the last waits for the final flush)", lines)
	}
	st, started := c.begin()
	c.end(st, started, callInfo{client: 0, conn: "127.0.0.1:5", pod: "pod-a"}, nil)
	final := c.ready(time.Now(), true)
	if len(final) != 1 || final[0].T != 1 || final[0].Calls["pod-a"] != 1 {
		t.Fatalf("final lines %+v, want second 1 with the late call", final)
	}
	r := run{Duration: 2}
	r.fill(final)
	if len(r.Conns) != 1 || r.Summary.Calls != 1 {
		t.Errorf("the run's record holds %d connections and %d calls, want the late call's 1 and 1", len(r.Conns), r.Summary.Calls)
	}
}

func TestGenerateLoadAgainstNothing(t *testing.T) {
	// Nothing listens on port 1: every call fails, and the generator still
	// reports every second and finishes.
	var lines []loadLine
	cfg := loadConfig{Target: "passthrough:///127.0.0.1:1", Conns: 2, Rate: 20, Duration: 1500 * time.Millisecond, CallTimeout: 200 * time.Millisecond}
	err := generateLoad(context.Background(), cfg, func(l loadLine) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if lines[0].Type != "start" || lines[len(lines)-1].Type != "done" {
		t.Fatalf("first and last lines %+v, %+v; want start and done", lines[0], lines[len(lines)-1])
	}
	failed, errs := 0, 0
	for _, l := range lines {
		failed += sumMap(l.Failed)
		errs += l.DialErrors
		if sumMap(l.Calls) != 0 {
			t.Errorf("second %d has successful calls: %v", l.T, l.Calls)
		}
	}
	if failed == 0 || errs == 0 {
		t.Errorf("%d failed calls and %d dial errors, want some of both", failed, errs)
	}
}

func TestPlotIsWellFormedSVG(t *testing.T) {
	r := run{Scenario: "seed-clusterip", Mode: "age", Duration: 4,
		Pods:      []podInfo{{Name: "a"}, {Name: "b", New: true}},
		FinalPods: []string{"a", "b"},
		Events:    []event{{Label: "scale 1→2", Kind: eventScale, At: 1, Done: 1.2}},
	}
	r.fill([]loadLine{
		{Type: "second", T: 0, Calls: map[string]int{"a": 10}},
		{Type: "second", T: 1, Calls: map[string]int{"a": 5, "b": 5}, Failed: map[string]int{"Unavailable": 1}},
		{Type: "second", T: 2, Calls: map[string]int{"a": 5, "b": 5}},
		{Type: "second", T: 3},
	})
	// A run with load measures draws share bars: calls, cost and CPU.
	loaded := synthRun([]string{"a", "b"}, nil, 4, []synthConn{
		{pod: "a", calls: repeat(10, 4), heavy: repeat(1, 4)}, {client: 1, pod: "b", calls: repeat(10, 4)},
	}, map[string][]float64{"a": {3, 3, 3, 3}, "b": {1, 1, 1, 1}})
	loaded.Scenario, loaded.Spread, loaded.Policy = "skewed-cost", 5, policyWRR
	runs := []run{r, {Scenario: "seed-clusterip", Mode: "fair-share", Skipped: "no <flag> & co"}, loaded}
	var b bytes.Buffer
	if err := writePlot(&b, runs, "test <plot>"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "skewed-cost k=5 wrr / m") || !strings.Contains(b.String(), "of the CPU") || !strings.Contains(b.String(), "bound 1.") {
		t.Errorf("the plot lacks the loaded run's panel, share bars or load line")
	}
	dec := xml.NewDecoder(&b)
	polygons := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polygon" {
			polygons++
		}
	}
	if polygons != 4 {
		t.Errorf("%d pod bands, want 2 + 2", polygons)
	}
}

func TestTable(t *testing.T) {
	r := run{Scenario: "seed-clusterip", Mode: "none", Pods: []podInfo{{Name: "a"}, {Name: "b", New: true}}, FinalPods: []string{"a", "b"},
		Events: []event{{Kind: eventScale, Done: 0.5}}}
	r.fill([]loadLine{{Type: "second", T: 0, Calls: map[string]int{"a": 10}}, {Type: "second", T: 1, Calls: map[string]int{"a": 10}}})
	loaded := synthRun([]string{"a", "b"}, nil, 4, []synthConn{
		{pod: "a", calls: repeat(10, 4), heavy: repeat(1, 4)}, {client: 1, pod: "b", calls: repeat(10, 4)},
	}, map[string][]float64{"a": {3, 3, 3, 3}, "b": {1, 1, 1, 1}})
	loaded.Scenario, loaded.Mode, loaded.Spread, loaded.Rate = "one-heavy-client", "age", 10, 40
	var b strings.Builder
	writeTable(&b, &result{Params: defaultParams(true), Runs: []run{r, {Scenario: "x", Mode: "y", Error: "boom\nmore"}, loaded},
		CallCost: &callCostResult{LightUs: 500, HeavyUs: 10000, Ratio: 20, HeavyWork: 100000, WorkForTarget: 100000}})
	for _, want := range []string{"seed-clusterip", "never", "p1* 0", "FAILED: boom",
		"heaviest conn", "one-heavy-client k=10", "p0 50/74/75, p1 50/26/25", "heavy call 10000.0 µs = 20.0 ×"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-short", "-scenario", "seed-clusterip,overhead", "-modes", "none", "-rate", "50", "-grace", "9s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.p.Short || o.p.Rate != 50 || o.p.Duration != 15*time.Second || o.p.Age != 2*time.Second {
		t.Errorf("params %+v", o.p)
	}
	if o.p.DrainTimeout < o.p.Grace {
		t.Errorf("drain timeout %v below grace %v: the server would refuse the flags", o.p.DrainTimeout, o.p.Grace)
	}
	if o.p.PeerAge != 5*time.Minute {
		t.Errorf("default peer age %v, want 5m", o.p.PeerAge)
	}
	o, err = parseFlags([]string{"-spread-k", "1, 10", "-policy", "weighted_round_robin", "-heavy-work", "500", "-peer-age", "20m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"peers", "fair-share", "fair-share-sheds"} {
		args := modeArgs(t, mode, o.p)
		if i := slices.Index(args, "-max-connection-age"); i < 0 || i+1 == len(args) || args[i+1] != "20m0s" {
			t.Errorf("-peer-age 20m: mode %s's server flags %q, want -max-connection-age 20m0s", mode, args)
		}
	}
	if o, err := parseFlags([]string{"-peer-age", "1s"}, io.Discard); err != nil || o.p.PeerAge != time.Second {
		t.Errorf("-peer-age 1s: peer age %v, %v; want 1s (the server's shortest)", o.p.PeerAge, err)
	}
	if !reflect.DeepEqual(o.p.Spreads, []int{1, 10}) || !reflect.DeepEqual(o.p.Policies, []string{policyWRR}) || o.p.HeavyWork != 500 || !o.heavyWorkSet {
		t.Errorf("spreads %v, policies %v, heavy work %d (set %v); want [1 10], [weighted_round_robin], 500 (set)", o.p.Spreads, o.p.Policies, o.p.HeavyWork, o.heavyWorkSet)
	}
	if o, _ := parseFlags(nil, io.Discard); o.p.HeavyWork != defaultHeavyWork || o.heavyWorkSet {
		t.Errorf("default heavy work %d (set %v), want %d", o.p.HeavyWork, o.heavyWorkSet, defaultHeavyWork)
	}
	o, err = parseFlags([]string{"-server-log-level", "debug"}, io.Discard)
	if err != nil || o.p.ServerLogLevel != "debug" {
		t.Errorf("-server-log-level debug: %q, %v", o.p.ServerLogLevel, err)
	}
	sc, _ := findScenario("fleet")
	m, _ := findMode("fair-share")
	if args := serverArgs(sc, m, o.p, "hello-headless"); !strings.Contains(strings.Join(args, " "), "-log-level debug") {
		t.Errorf("-server-log-level debug: the pods' server flags %q lack -log-level debug", args)
	}
	if needs := serverNeeds(sc, m, o.p); !slices.Contains(needs, "log-level") {
		t.Errorf("-server-log-level debug: the run needs %q of the server; want log-level among them", needs)
	}
	if o, _ := parseFlags(nil, io.Discard); slices.Contains(serverArgs(sc, m, o.p, "hello-headless"), "-log-level") {
		t.Error("without -server-log-level the pods' server flags set -log-level")
	}
	o, err = parseFlags([]string{"-cluster", "real", "-proxy-mode", "nftables"}, io.Discard)
	if err != nil || o.p.Cluster != clusterReal || o.p.ProxyMode != "nftables" {
		t.Errorf("-cluster real -proxy-mode nftables: cluster %q, proxy mode %q, %v", o.p.Cluster, o.p.ProxyMode, err)
	}
	for _, bad := range [][]string{{"-scenario", "nope"}, {"-modes", "nope"}, {"extra"},
		{"-cluster", "kind"}, {"-cluster", "real", "-proxy-mode", "ipvs"}, {"-proxy-mode", "nftables"}, {"-manifests", "k8s"},
		{"-spread-k", "0"}, {"-spread-k", "x"}, {"-spread-k", "257"}, {"-policy", "pick_first"}, {"-heavy-work", "-1"}, {"-heavy-work", "1000001"},
		{"-peer-age", "-1m"}, {"-peer-age", "500ms"}, {"-server-log-level", "loud"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// modeArgs returns the server flags of the named mode for p.
func modeArgs(t *testing.T, name string, p params) []string {
	t.Helper()
	m, ok := findMode(name)
	if !ok {
		t.Fatalf("no mode %q", name)
	}
	return m.args(p, "hello-headless")
}

// TestOverheadRuns checks the overhead benchmark works end to end; the
// numbers themselves are only meaningful from the command.
func TestOverheadRuns(t *testing.T) {
	res, err := runOverhead(context.Background(), overheadConfig{Reps: 2, Duration: 100 * time.Millisecond, Conns: 2, Concurrency: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Samples) != 12 || len(res.Medians) != 6 {
		t.Fatalf("%d samples, %d medians; want 12 and 6 (plain, rotor, rotor+chain, rotor+chain traced 1 %% and 100 %%, rotor+fair share)", len(res.Samples), len(res.Medians))
	}
	for _, m := range res.Medians {
		if m.CallsPerSec <= 0 || m.P99Ms <= 0 || m.ThroughputRatio <= 0 {
			t.Errorf("%+v: want positive numbers", m)
		}
	}
	if res.Medians[0].ThroughputRatio != 1 {
		t.Errorf("the baseline's ratio to itself is %v, want 1", res.Medians[0].ThroughputRatio)
	}
}

// TestRefillFromJSON checks that -from, which re-analyses a result.json,
// gets the same summary as the run itself, and drops seconds past the end.
func TestRefillFromJSON(t *testing.T) {
	r := run{Scenario: "s", Mode: "m", Duration: 3,
		Pods:      []podInfo{{Name: "a"}, {Name: "b", New: true}},
		FinalPods: []string{"a", "b"},
		Events:    []event{{Kind: eventScale, At: 0.5, Done: 0.6}},
	}
	lat := map[int]uint64{bucketOf(time.Millisecond): 8, bucketOf(3 * time.Millisecond): 2}
	r.fill([]loadLine{
		{Type: "second", T: 0, Calls: map[string]int{"a": 10}, Latency: lat},
		{Type: "second", T: 1, Calls: map[string]int{"a": 5, "b": 5}, Latency: lat},
		{Type: "second", T: 2, Calls: map[string]int{"a": 5, "b": 5}, Latency: lat},
		{Type: "second", T: 3, Calls: map[string]int{"a": 1}}, // past the end
	})
	if len(r.Seconds) != 3 {
		t.Fatalf("%d seconds, want the 3 of the run", len(r.Seconds))
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back run
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	back.refill()
	if !reflect.DeepEqual(back.Summary, r.Summary) {
		t.Errorf("refilled summary\n%+v\nwant\n%+v", back.Summary, r.Summary)
	}
	if back.Seconds[1].P99Ms != r.Seconds[1].P99Ms || r.Seconds[1].P99Ms == 0 {
		t.Errorf("per-second p99 %v after refill, want %v (non-zero)", back.Seconds[1].P99Ms, r.Seconds[1].P99Ms)
	}
}
