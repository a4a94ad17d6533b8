package main

import (
	"slices"
	"strings"
	"testing"
	"time"
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
	// Client 4 is elsewhere; client 5 arrives on p0 after 10 s. Client 6
	// came to p0 from p1 before and stays; client 7 lands back on p0 in
	// second 14 and leaves in 20; client 8 leaves in second 10, the first
	// heavy one; client 9 moved to p0 within second 9, making more of its
	// calls on p1 then, and stays.
	conns := []connRecord{
		{ID: "6/a", Client: 6, Pod: "p1", From: 0, Calls: steady(5)},
		{ID: "6/b", Client: 6, Pod: "p0", From: 4, Calls: steady(26)},
		{ID: "7/a", Client: 7, Pod: "p0", From: 0, Calls: steady(15)},
		{ID: "7/b", Client: 7, Pod: "p0", From: 14, Calls: steady(6)},
		{ID: "7/c", Client: 7, Pod: "p2", From: 20, Calls: steady(10)},
		{ID: "8/a", Client: 8, Pod: "p0", From: 0, Calls: steady(11)},
		{ID: "8/b", Client: 8, Pod: "p1", From: 10, Calls: steady(20)},
		{ID: "9/a", Client: 9, Pod: "p1", From: 0, Calls: steady(10)},
		{ID: "9/b", Client: 9, Pod: "p0", From: 9, Calls: append(series{1}, steady(20)...)},
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
	r := run{Events: []event{{Label: "client 0's calls heavy", Kind: eventHeavy, At: 10, Done: 10}}, Conns: conns,
		Pods: []podInfo{{Name: "p0"}, {Name: "p1", Index: 1}, {Name: "p2", Index: 2}}}
	h := r.analyzeHeavy()
	if h == nil {
		t.Fatal("no heavy summary for a run with a heavy event")
	}
	if h.Pod != "p0" || h.Neighbours != 7 || !slices.Equal(h.Moved, []float64{0, 4, 10, 13}) || h.HeavyMoved {
		t.Errorf("got %+v, want pod p0, 7 neighbours (1, 2, 3, 6, 7, 8, 9), moved after [0 4 10 13] s (8, 1, 7, 3), client 0 stayed", *h)
	}
	want := "client 0's calls heavy at 10 s on p0 with 7 neighbours; they moved off after 0 s, 4 s, 10 s, 13 s; 3 stayed; client 0 stayed"
	if got := h.text(r.podShortName); got != want {
		t.Errorf("text:\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct {
		h    heavySummary
		want string
	}{
		{heavySummary{At: 60, Pod: "p2", Neighbours: 1, Moved: []float64{16}},
			"client 0's calls heavy at 60 s on p2 with 1 neighbour; they moved off after 16 s; none stayed; client 0 stayed"},
		{heavySummary{At: 60, Pod: "p9", Neighbours: 2, HeavyMoved: true},
			"client 0's calls heavy at 60 s on p9 with 2 neighbours; 2 stayed; client 0 moved too"},
	} {
		if got := tc.h.text(r.podShortName); got != tc.want {
			t.Errorf("text:\n got %s\nwant %s", got, tc.want)
		}
	}

	// Clients on several TCP connections each: no summary.
	spread := r
	spread.Spread = 2
	if h := spread.analyzeHeavy(); h != nil {
		t.Errorf("a run with 2 TCP connections per client has a heavy summary %+v", *h)
	}

	// Client 0 itself moves: the summary says so.
	moved := r
	moved.Conns = slices.Clone(r.Conns)
	i := slices.IndexFunc(moved.Conns, func(c connRecord) bool { return c.ID == "0/a" })
	moved.Conns[i].Calls = steady(25)
	moved.Conns = append(moved.Conns, connRecord{ID: "0/b", Client: 0, Pod: "p2", From: 25, Calls: steady(5)})
	if h := moved.analyzeHeavy(); h == nil || !h.HeavyMoved || h.Neighbours != 7 {
		t.Errorf("client 0 moved to p2 at 25 s, the summary has %+v; want HeavyMoved and the same 7 neighbours", h)
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
	if why := p.unsupported(variant(t, "late-heavy-client", 2, policyRoundRobin)); !strings.Contains(why, "-spread-k") {
		t.Errorf("late-heavy-client with 2 TCP connections per client: %q, want it skipped, naming -spread-k", why)
	}
	// Its run records the change, when the load generator makes it, for
	// analyzeHeavy; no other scenario's does.
	if ev := sc.loadEvents(p); len(ev) != 1 || ev[0].Kind != eventHeavy || ev[0].At != lc.HeavyFrom.Seconds() || ev[0].Done != ev[0].At {
		t.Errorf("late-heavy-client's load events %+v; want one of kind heavy at %v s", ev, lc.HeavyFrom.Seconds())
	}
	for _, other := range scenarios {
		if other.name != sc.name && other.loadEvents(p) != nil {
			t.Errorf("%s has load events %+v", other.name, other.loadEvents(p))
		}
	}
}

func TestLoadConfigHeavyFrom(t *testing.T) {
	base := loadConfig{Target: "passthrough:///x", Conns: 2, Rate: 10, Duration: 10 * time.Second, CallTimeout: time.Second,
		Heavy: []float64{1, 0}, HeavyWork: 1}
	for _, tc := range []struct {
		from    time.Duration
		noHeavy bool
		wantErr string
	}{
		{from: 0},
		{from: 5 * time.Second},
		{from: -time.Second, wantErr: "heavy calls from -1s; want 0 (from the start) to less than the duration, 10s"},
		{from: 10 * time.Second, wantErr: "heavy calls from 10s; want 0 (from the start) to less than the duration, 10s"},
		{from: 5 * time.Second, noHeavy: true, wantErr: "heavy calls from 5s, but no heavy fractions"},
	} {
		c := base
		c.HeavyFrom = tc.from
		if tc.noHeavy {
			c.Heavy, c.HeavyWork = nil, 0
		}
		err := c.validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("HeavyFrom %s (Heavy %v): error %v, want %q", tc.from, c.Heavy, err, tc.wantErr)
		}
	}
}
