package main

import (
	"slices"
	"testing"
)

// steady returns n seconds of 2 calls each.
func steady(n int) series {
	s := make(series, n)
	for i := range s {
		s[i] = 2
	}
	return s
}

func TestAnalyzeHeavy(t *testing.T) {
	// Client 0's calls turn heavy at 10 s on p0, which it shares with
	// clients 1, 2 and 3; 1 moves in second 14 and 3 in second 22, 2 stays.
	// Client 4 is elsewhere; client 5 arrives on p0 after 10 s.
	conns := []connRecord{
		{ID: "0/a", Client: 0, Pod: "p0", From: 0, Calls: steady(30)},
		{ID: "1/a", Client: 1, Pod: "p0", From: 0, Calls: steady(15)},
		{ID: "1/b", Client: 1, Pod: "p1", From: 14, Calls: steady(16)},
		{ID: "2/a", Client: 2, Pod: "p0", From: 0, Calls: steady(30)},
		{ID: "3/a", Client: 3, Pod: "p0", From: 0, Calls: steady(23)},
		{ID: "3/b", Client: 3, Pod: "p2", From: 22, Calls: append(series{0}, steady(7)...)}, // dialled in 22, first call in 23
		{ID: "4/a", Client: 4, Pod: "p1", From: 0, Calls: steady(30)},
		{ID: "5/a", Client: 5, Pod: "p1", From: 0, Calls: steady(13)},
		{ID: "5/b", Client: 5, Pod: "p0", From: 12, Calls: steady(18)},
	}
	r := run{Events: []event{{Label: "client 0's calls heavy", Kind: "heavy", At: 10, Done: 10}}, Conns: conns,
		Pods: []podInfo{{Name: "p0"}, {Name: "p1", Index: 1}, {Name: "p2", Index: 2}}}
	h := r.analyzeHeavy()
	if h == nil {
		t.Fatal("no heavy summary for a run with a heavy event")
	}
	if h.Pod != "p0" || h.Neighbours != 3 || !slices.Equal(h.Moved, []float64{4, 13}) || h.HeavyMoved {
		t.Errorf("got %+v, want pod p0, 3 neighbours, moved after [4 13] s, client 0 stayed", *h)
	}
	want := "client 0's calls heavy at 10 s on p0 with 3 neighbours; they moved off after 4 s, 13 s; 1 stayed; client 0 stayed"
	if got := h.text(r.podShortName); got != want {
		t.Errorf("text:\n got %s\nwant %s", got, want)
	}

	// Client 0 itself moves: the summary says so.
	r.Conns = append(r.Conns, connRecord{ID: "0/b", Client: 0, Pod: "p2", From: 25, Calls: steady(5)})
	r.Conns[0].Calls = steady(26)
	if h := r.analyzeHeavy(); h == nil || !h.HeavyMoved {
		t.Errorf("client 0 moved to p2 at 25 s, the summary has %+v", h)
	}

	// No heavy event, or client 0 silent before it: no summary.
	if h := (&run{Conns: conns}).analyzeHeavy(); h != nil {
		t.Errorf("a run without a heavy event has a heavy summary %+v", *h)
	}
	r.Events[0].At = 40
	if h := r.analyzeHeavy(); h != nil {
		t.Errorf("client 0 made no calls in the second before the event, yet the summary is %+v", *h)
	}
}

// TestLateHeavyClientLoad checks what late-heavy-client asks of the load
// generator: 20 even connections at 40 % of -rate for 150 s, client 0's
// calls all heavy from 60 s and the others' never.
func TestLateHeavyClientLoad(t *testing.T) {
	sc, ok := findScenario("late-heavy-client")
	if !ok {
		t.Fatal("no late-heavy-client scenario")
	}
	p := defaultParams(false)
	lc := sc.loadConfig(p, "passthrough:///198.18.0.1:50051")
	if err := lc.validate(); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, p.Conns)
	want[0] = 1
	if lc.Conns != p.Conns || lc.Rate != p.Rate*costRateShare || lc.Weights != nil || !slices.Equal(lc.Heavy, want) ||
		lc.HeavyWork != p.HeavyWork || lc.HeavyFrom != lateHeavyAt || lc.Duration != lateHeavyLength {
		t.Errorf("late-heavy-client's load: %d conns at %v calls/s, weights %v, heavy %v (%d units) from %s, for %s; want %d at %v, even, client 0 heavy (%d units) from %s, for %s",
			lc.Conns, lc.Rate, lc.Weights, lc.Heavy, lc.HeavyWork, lc.HeavyFrom, lc.Duration,
			p.Conns, p.Rate*costRateShare, p.HeavyWork, lateHeavyAt, lateHeavyLength)
	}
	if sc.scaleTo != 0 || sc.rolling || sc.roll || sc.replicas != 5 {
		t.Errorf("late-heavy-client changes the pods (%d → %d, rolling %v, roll %v); want 5 pods left alone", sc.replicas, sc.scaleTo, sc.rolling, sc.roll)
	}
}
