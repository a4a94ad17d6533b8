package main

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// synthConn is a TCP connection of a synthetic run: the pod it goes to and
// its calls (heavy calls) second by second from second from.
type synthConn struct {
	client int
	pod    string
	from   int
	calls  []int
	heavy  []int
}

// synthRun builds a run of n seconds from connections, as the load
// generator would report it, and analyses it. cpu, when set, gives each
// pod's CPU ms per second.
func synthRun(pods []string, events []event, n int, conns []synthConn, cpu map[string][]float64) run {
	r := run{Scenario: "synth", Mode: "m", FinalPods: pods, Events: events}
	for _, p := range pods {
		r.Pods = append(r.Pods, podInfo{Name: p})
	}
	lines := make([]loadLine, n)
	for t := range lines {
		lines[t] = loadLine{Type: "second", T: t, Calls: map[string]int{}, Conns: map[string]*connSecond{}}
		for pod, ms := range cpu {
			if t < len(ms) {
				if lines[t].CPUMs == nil {
					lines[t].CPUMs = map[string]float64{}
				}
				lines[t].CPUMs[pod] = ms[t]
			}
		}
	}
	for i, c := range conns {
		id := string(rune('a'+i)) + "/" + c.pod
		for k, calls := range c.calls {
			t := c.from + k
			heavy := 0
			if c.heavy != nil {
				heavy = c.heavy[k]
			}
			lines[t].Calls[c.pod] += calls
			if heavy > 0 {
				if lines[t].Heavy == nil {
					lines[t].Heavy = map[string]int{}
				}
				lines[t].Heavy[c.pod] += heavy
			}
			lines[t].Conns[id] = &connSecond{Client: c.client, Pod: c.pod, Calls: calls, Heavy: heavy}
		}
	}
	r.fill(lines)
	return r
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.0015 }

func TestLowerBound(t *testing.T) {
	pods := []string{"a", "b"}
	for _, tc := range []struct {
		name     string
		events   []event
		n        int
		conns    []synthConn
		heaviest float64
		meanPod  float64
		bound    float64
	}{
		{
			// 30 + 10 calls a second over 2 pods: the mean pod gets 20, the
			// busy connection 30: no placement does better than 30/20.
			name: "heaviest above the mean", n: 6,
			conns: []synthConn{
				{pod: "a", calls: repeat(30, 6)},
				{client: 1, pod: "b", calls: repeat(10, 6)},
			},
			heaviest: 30, meanPod: 20, bound: 1.5,
		},
		{
			name: "heaviest below the mean", n: 6,
			conns: []synthConn{
				{pod: "a", calls: repeat(10, 6)}, {client: 1, pod: "a", calls: repeat(10, 6)},
				{client: 2, pod: "b", calls: repeat(10, 6)}, {client: 3, pod: "b", calls: repeat(6, 6)},
			},
			heaviest: 10, meanPod: 18, bound: 1,
		},
		{
			// A connection's first and last seconds are partial: the busy
			// client's connection is measured by its 4 whole seconds (40),
			// not by its mean over all 6 (30).
			name: "partial first and last seconds", n: 6,
			conns: []synthConn{
				{pod: "a", calls: []int{10, 40, 40, 40, 40, 10}},
				{client: 1, pod: "b", calls: repeat(10, 6)},
			},
			heaviest: 40, meanPod: 20, bound: 2,
		},
		{
			// Age rotation: the client's load moves from one connection to
			// the next; each carries the client's full 30 a second while up.
			name: "rotated connections", n: 10,
			conns: []synthConn{
				{pod: "a", calls: []int{30, 30, 30, 30, 15}},
				{pod: "b", from: 4, calls: []int{15, 30, 30, 30, 30, 30}},
				{client: 1, pod: "b", calls: repeat(10, 10)},
			},
			heaviest: 30, meanPod: 20, bound: 1.5,
		},
		{
			// Only the window counts (here: since the scale event at 5 s):
			// a connection that ended before it does not make the bound.
			name: "connection before the window", n: 12,
			events: []event{{Kind: eventScale, At: 4.5, Done: 5}},
			conns: []synthConn{
				{pod: "a", calls: repeat(100, 4)},
				{client: 1, pod: "a", from: 4, calls: repeat(20, 8)},
				{client: 2, pod: "b", calls: repeat(20, 12)},
			},
			heaviest: 20, meanPod: 20, bound: 1,
		},
		{
			// Cost units: a heavy call counts heavyCost (20). 10 calls with
			// 5 heavy are 5 + 5×20 = 105 a second; the other pod's 10 light
			// calls 10: mean pod 57.5.
			name: "cost units", n: 6,
			conns: []synthConn{
				{pod: "a", calls: repeat(10, 6), heavy: repeat(5, 6)},
				{client: 1, pod: "b", calls: repeat(10, 6)},
			},
			heaviest: 105, meanPod: 57.5, bound: 105 / 57.5,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := synthRun(pods, tc.events, tc.n, tc.conns, nil).Summary
			if !near(s.HeaviestConn, tc.heaviest) || !near(s.MeanPodLoad, tc.meanPod) || !near(s.LowerBound, tc.bound) {
				t.Errorf("heaviest connection %v, mean pod %v, bound %v; want %v, %v, %.3f",
					s.HeaviestConn, s.MeanPodLoad, s.LowerBound, tc.heaviest, tc.meanPod, tc.bound)
			}
			if !near(s.ImbalanceVsBound, s.ImbalanceLoad/tc.bound) {
				t.Errorf("imbalance vs bound %v, want %v / %v", s.ImbalanceVsBound, s.ImbalanceLoad, tc.bound)
			}
		})
	}
	// Without connections (a result.json from before they were recorded)
	// there is no bound, and no ratio to it.
	r := synthRun(pods, nil, 4, []synthConn{{pod: "a", calls: repeat(5, 4)}}, nil)
	r.Conns = nil
	r.Summary = r.analyze()
	if s := r.Summary; s.LowerBound != 0 || s.ImbalanceVsBound != 0 || s.ImbalanceLoad != 2 {
		t.Errorf("no connections: bound %v, vs bound %v, imbalance %v; want 0, 0, 2", s.LowerBound, s.ImbalanceVsBound, s.ImbalanceLoad)
	}
}

func TestImbalance1sP90(t *testing.T) {
	// 2 pods, 100 calls a second: second k splits them 50+5k / 50-5k, so
	// its max/mean is 1 + k/10 (1.0 … 1.9). The p90 of 10 seconds is the
	// 9th smallest: 1.8.
	var a, b []int
	for k := range 10 {
		a, b = append(a, 50+5*k), append(b, 50-5*k)
	}
	s := synthRun([]string{"a", "b"}, nil, 10, []synthConn{{pod: "a", calls: a}, {client: 1, pod: "b", calls: b}}, nil).Summary
	if s.Imbalance1sP90 != 1.8 {
		t.Errorf("p90 of 1 s imbalances 1.0…1.9 = %v, want 1.8", s.Imbalance1sP90)
	}

	// A hot spot that moves: each second one of 3 pods gets twice the
	// others' calls. Over the window every pod got the same, so the 30 s
	// imbalance is 1; each second's is 2 / (4/3) = 1.5.
	pods := []string{"a", "b", "c"}
	var conns []synthConn
	for i, p := range pods {
		calls := make([]int, 9)
		for k := range calls {
			calls[k] = 10
			if k%3 == i {
				calls[k] = 20
			}
		}
		conns = append(conns, synthConn{client: i, pod: p, calls: calls})
	}
	s = synthRun(pods, nil, 9, conns, nil).Summary
	if s.ImbalanceLoad != 1 || s.Imbalance1sP90 != 1.5 {
		t.Errorf("moving hot spot: imbalance %v, p90 of 1 s %v; want 1 and 1.5", s.ImbalanceLoad, s.Imbalance1sP90)
	}

	// Pods that are gone at the end do not count, and a pod running at the
	// end but answering nothing in a second does (0 of the mean).
	s = synthRun([]string{"a", "b"}, nil, 4, []synthConn{
		{pod: "a", calls: repeat(10, 4)}, {client: 1, pod: "old", calls: repeat(50, 4)}, {client: 2, pod: "b", calls: []int{10, 10, 10, 0}},
	}, nil).Summary
	if s.Imbalance1sP90 != 2 || !near(s.ImbalanceLoad, 40.0/35) {
		t.Errorf("gone pod and idle second: p90 %v, imbalance %v; want 2 and %.3f", s.Imbalance1sP90, s.ImbalanceLoad, 40.0/35)
	}

	// Cost: a second whose calls are even but whose heavy calls all went
	// to one pod is uneven in cost.
	s = synthRun([]string{"a", "b"}, nil, 2, []synthConn{
		{pod: "a", calls: repeat(10, 2), heavy: repeat(1, 2)}, {client: 1, pod: "b", calls: repeat(10, 2)},
	}, nil).Summary
	if want := 29.0 / ((29.0 + 10) / 2); s.LoadUnit != "cost" || !near(s.Imbalance1sP90, want) || s.Imbalance != 1 {
		t.Errorf("cost: unit %q, p90 %v, imbalance of calls %v; want cost, %.3f, 1", s.LoadUnit, s.Imbalance1sP90, s.Imbalance, want)
	}
}

func TestCPUShares(t *testing.T) {
	// 3 pods, scale event done at 2 s: the window is seconds 2-5. CPU ms a
	// second: a 10, b 20, c 30 in the window (and anything before it).
	pods := []string{"a", "b", "c"}
	cpu := map[string][]float64{
		"a": {500, 500, 10, 10, 10, 10},
		"b": {0, 0, 20, 20, 20, 20},
		"c": {0, 0, 30, 30, 30, 30},
		"x": {900, 900, 900, 900, 900, 900}, // not running at the end
	}
	conns := []synthConn{{pod: "a", calls: repeat(10, 6)}, {client: 1, pod: "b", calls: repeat(10, 6)}, {client: 2, pod: "c", calls: repeat(20, 6)}}
	s := synthRun(pods, []event{{Kind: eventScale, At: 1.5, Done: 2}}, 6, conns, cpu).Summary
	// max/mean = 30 / 20.
	if s.ImbalanceCPU != 1.5 {
		t.Errorf("CPU imbalance %v, want 1.5", s.ImbalanceCPU)
	}
	want := map[string]podShare{
		"a": {Calls: 0.25, CPU: 0.167, CPUSeconds: 0.04},
		"b": {Calls: 0.25, CPU: 0.333, CPUSeconds: 0.08},
		"c": {Calls: 0.5, CPU: 0.5, CPUSeconds: 0.12},
	}
	if !reflect.DeepEqual(s.Shares, want) {
		t.Errorf("shares %+v, want %+v", s.Shares, want)
	}
	// No CPU samples: no CPU imbalance and no CPU shares.
	s = synthRun(pods, nil, 6, conns, nil).Summary
	if s.ImbalanceCPU != 0 || s.Shares["a"].CPU != 0 {
		t.Errorf("without samples: CPU imbalance %v, shares %+v; want none", s.ImbalanceCPU, s.Shares)
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		q    float64
		want float64
	}{
		{nil, 0.9, 0},
		{[]float64{3}, 0.9, 3},
		{[]float64{5, 1, 4, 2, 3}, 0.9, 5}, // rank ceil(4.5) = 5
		{[]float64{5, 1, 4, 2, 3}, 0.5, 3},
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 0.9, 9},
		{[]float64{1, 2, 3, 4, 5, 6, 7}, 0.9, 7}, // rank ceil(6.3) = 7: at least 90 % at or below
	} {
		if got := quantile(tc.xs, tc.q); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.xs, tc.q, got, tc.want)
		}
	}
}

// TestLoadMeasuresSurviveJSON checks that -from recomputes the load
// measures from result.json: the connections' series and the CPU samples
// are in it.
func TestLoadMeasuresSurviveJSON(t *testing.T) {
	r := synthRun([]string{"a", "b"}, nil, 6, []synthConn{
		{pod: "a", calls: []int{3, 30, 31, 29, 30, 7}, heavy: []int{0, 2, 1, 0, 3, 0}},
		{client: 1, pod: "b", from: 1, calls: repeat(10, 5)},
	}, map[string][]float64{"a": {1, 2, 3, 4, 5, 6}, "b": {2, 2, 2, 2, 2, 2}})
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"calls":"3 30 31 29 30 7"`) {
		t.Errorf("a connection's calls are not one compact string in %s", js)
	}
	var back run
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	back.refill()
	if !reflect.DeepEqual(back.Summary, r.Summary) || !reflect.DeepEqual(back.Conns, r.Conns) {
		t.Errorf("after -from: summary %+v\nconns %+v\nwant %+v\n%+v", back.Summary, back.Conns, r.Summary, r.Conns)
	}
	if r.Summary.LowerBound == 0 || r.Summary.ImbalanceCPU == 0 {
		t.Errorf("the synthetic run has no bound or CPU imbalance: %+v", r.Summary)
	}
}
