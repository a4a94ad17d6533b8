package main

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/kubelab"
)

// Short lab runs of the scenarios of uneven load, one mode each: they check
// that the load measures come out present and sane and that no call fails,
// not how well any mode balances (that is the report's job).

// runShortVariant runs a variant of a scenario in a mode with the -short
// parameters and checks that the lab left nothing behind.
func runShortVariant(t *testing.T, sc scenario, modeName string) run {
	t.Helper()
	bins := labBinaries(t)
	m, ok := findMode(modeName)
	if !ok {
		t.Fatalf("no mode %q", modeName)
	}
	p := defaultParams(true)
	for _, f := range serverNeeds(sc, m, p) {
		if !serverHasFlag(bins.server, f) {
			t.Skipf("the example server has no -%s flag", f)
		}
	}
	return runShortIn(t, sc, m, p, bins)
}

// variant returns the scenario name's variant with spread k and policy.
func variant(t *testing.T, name string, k int, policy string) scenario {
	t.Helper()
	sc, ok := findScenario(name)
	if !ok {
		t.Fatalf("no scenario %q", name)
	}
	for _, v := range sc.variants(params{Spreads: []int{k}, Policies: []string{policy}}) {
		return v
	}
	t.Fatalf("scenario %q has no variants", name)
	return sc
}

// checkLoadSummary asserts that a run's load measures are there and
// consistent: no failed call, a lower bound of at least 1, imbalances of at
// least 1 and their ratios to the bound, CPU time for every running pod,
// shares that add up to 1.
func checkLoadSummary(t *testing.T, r run, unit string) {
	t.Helper()
	s := r.Summary
	if s.Calls == 0 {
		t.Fatal("no call succeeded")
	}
	if s.Failed != 0 {
		t.Errorf("%d calls failed, want 0: %v", s.Failed, s.FailedByCode)
	}
	if s.LoadUnit != unit {
		t.Errorf("load unit %q, want %q", s.LoadUnit, unit)
	}
	if s.LowerBound < 1 || s.LowerBound > 10 || s.HeaviestConn <= 0 || s.MeanPodLoad <= 0 {
		t.Errorf("lower bound %v (heaviest connection %v, mean pod %v): want a bound of 1 to 10 from positive loads",
			s.LowerBound, s.HeaviestConn, s.MeanPodLoad)
	}
	if want := max(s.HeaviestConn, s.MeanPodLoad) / s.MeanPodLoad; math.Abs(s.LowerBound-want) > 0.002 {
		t.Errorf("lower bound %v, want max(%v, %v) / %v = %.3f", s.LowerBound, s.HeaviestConn, s.MeanPodLoad, s.MeanPodLoad, want)
	}
	for name, v := range map[string]float64{"imbalance_load": s.ImbalanceLoad, "imbalance_1s_p90": s.Imbalance1sP90, "imbalance_cpu": s.ImbalanceCPU} {
		if v < 1 || v > float64(len(r.FinalPods)) {
			t.Errorf("%s = %v, want 1 to %d (pods)", name, v, len(r.FinalPods))
		}
	}
	if s.LowerBound > 0 {
		if math.Abs(s.ImbalanceVsBound-s.ImbalanceLoad/s.LowerBound) > 0.002 || math.Abs(s.Imbalance1sP90VsBound-s.Imbalance1sP90/s.LowerBound) > 0.002 {
			t.Errorf("ratios to the bound %v, %v; want %v / %v and %v / %v", s.ImbalanceVsBound, s.Imbalance1sP90VsBound,
				s.ImbalanceLoad, s.LowerBound, s.Imbalance1sP90, s.LowerBound)
		}
	}
	var calls, cpu float64
	for _, name := range r.FinalPods {
		sh, ok := s.Shares[name]
		if !ok || sh.CPUSeconds <= 0 {
			t.Errorf("pod %s: shares %+v, want its share of the calls and some CPU time", name, sh)
		}
		calls += sh.Calls
		cpu += sh.CPU
	}
	if math.Abs(calls-1) > 0.01 || math.Abs(cpu-1) > 0.01 {
		t.Errorf("the pods' shares add up to %v of the calls and %v of the CPU, want 1 each: %+v", calls, cpu, s.Shares)
	}
	if len(r.Conns) == 0 {
		t.Error("the run recorded no connections")
	}
}

// TestSkewedClients runs Zipf clients: the bound must come out near the
// one of the rates the load generator was given, 27.8 % of the calls on
// the busiest of 20 connections over 5 pods: 0.278 × 5 = 1.39.
func TestSkewedClients(t *testing.T) {
	r := runShortVariant(t, variant(t, "skewed-clients", 1, policyRoundRobin), "age")
	checkLoadSummary(t, r, "calls")
	if b := r.Summary.LowerBound; b < 1.25 || b > 1.55 {
		t.Errorf("lower bound %v, want about 1.39 (the busiest of 20 Zipf clients over 5 pods)", b)
	}
}

// TestSkewedCost runs the cost mix through the ClusterIP: a tenth of the
// calls are heavy and the load is counted in cost.
func TestSkewedCost(t *testing.T) {
	r := runShortVariant(t, variant(t, "skewed-cost", 1, policyRoundRobin), "age")
	checkLoadSummary(t, r, "cost")
	heavy := 0
	for _, s := range r.Seconds {
		heavy += sumMap(s.Heavy)
	}
	if share := float64(heavy) / float64(r.Summary.Calls); math.Abs(share-heavyCallShare) > 0.02 {
		t.Errorf("%d of %d calls heavy (%.3f), want %.2f", heavy, r.Summary.Calls, share, heavyCallShare)
	}
	if r.HeavyWork != defaultHeavyWork {
		t.Errorf("heavy work %d units, want %d", r.HeavyWork, defaultHeavyWork)
	}
}

// TestSkewedCostHeadlessWRR runs the cost mix with weighted_round_robin
// clients of the headless Service, against servers that report ORCA load.
func TestSkewedCostHeadlessWRR(t *testing.T) {
	sc := variant(t, "skewed-cost-headless", 1, policyWRR)
	r := runShortVariant(t, sc, "age")
	checkLoadSummary(t, r, "cost")
	if !slices.Contains(r.ServerArgs, "-orca") || r.Policy != policyWRR {
		t.Errorf("server args %q, policy %q: want -orca and %s", r.ServerArgs, r.Policy, policyWRR)
	}
	// Every client keeps a connection to every pod: no connection carries
	// much more than a pod's mean. Not exactly: with the short runs' age of
	// 2 s a client often holds fewer connections for a moment, and a
	// connection measured over few whole seconds carries its heavy calls'
	// bursts (1.29 on a busy host).
	if b := r.Summary.LowerBound; b > 2 {
		t.Errorf("lower bound %v for clients connected to every pod, want well below 2", b)
	}
}

// TestOneHeavyClient runs one client connection spread over 5 TCP
// connections on 5 pods: each carries about a fifth of the calls, so the
// bound is far below the 5 of a client on one connection, and the client
// dialled at least 5 connections. Not "about 1": with the short runs' age of
// 2 s, one of the 5 is often reconnecting and the other 4 carry its calls
// (1.25), more so on a busy host.
func TestOneHeavyClient(t *testing.T) {
	r := runShortVariant(t, variant(t, "one-heavy-client", 5, policyRoundRobin), "age")
	checkLoadSummary(t, r, "calls")
	if b := r.Summary.LowerBound; b > 2 {
		t.Errorf("lower bound %v with the client over 5 TCP connections, want well below the 5 of one connection", b)
	}
	if r.Summary.Dials < 5 || r.Spread != 5 {
		t.Errorf("%d connections dialled with spread %d, want at least 5 with spread 5", r.Summary.Dials, r.Spread)
	}
	clients := map[int]bool{}
	for _, c := range r.Conns {
		clients[c.Client] = true
	}
	if len(clients) != 1 {
		t.Errorf("connections of %d clients, want 1", len(clients))
	}
}

// TestSkewedL7 runs both skewed loads behind nginx, the per-call
// reference.
func TestSkewedL7(t *testing.T) {
	labBinaries(t)
	if err := kubelab.AvailableL7(); err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct{ scenario, unit string }{{"skewed-clients-l7", "calls"}, {"skewed-cost-l7", "cost"}} {
		t.Run(tc.scenario, func(t *testing.T) {
			checkLoadSummary(t, runShortVariant(t, variant(t, tc.scenario, 1, policyRoundRobin), "none"), tc.unit)
		})
	}
}

// TestCallCost runs the calibration of heavy calls: a heavy call must cost
// more server CPU than a light one, and the numbers must be positive.
func TestCallCost(t *testing.T) {
	bins := labBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := defaultParams(true)
	c, err := runCallCost(ctx, p, bins, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *c)
	if c.Failed != 0 {
		t.Errorf("%d calls failed", c.Failed)
	}
	if c.LightUs <= 0 || c.HeavyUs <= c.LightUs || c.UnitNs <= 0 || c.WorkForTarget <= 0 {
		t.Errorf("light %v µs, heavy %v µs, unit %v ns, %d units for %.0f×: want a heavy call above a light one, all positive",
			c.LightUs, c.HeavyUs, c.UnitNs, c.WorkForTarget, heavyCost)
	}
	// Each connection's heavy calls are within one of its share of any
	// stretch of its calls.
	if want := heavyCallShare * float64(c.MixCalls); math.Abs(float64(c.MixHeavy)-want) > float64(c.Conns+1) {
		t.Errorf("%d of %d mix calls heavy, want %.1f ± %d", c.MixHeavy, c.MixCalls, want, c.Conns+1)
	}
}

// TestLateHeavyClient runs late-heavy-client with fair share: past growth,
// a client's calls turn heavy on a pod of a balanced fleet, and its
// neighbours must move off that pod while it stays. Only the pod's load
// reading explains that shed, so past growth it waits loadOnlyWant, 15 s,
// once the reading has risen: the first neighbour goes no sooner than 10 s
// after the load began (5 s, steadyWant, would be a shed that does not
// wait as the rule says; 16 s in the recorded runs). Every one of them
// must be off within 30 s: one whose client lands back on the pod (one
// time in five) goes again once its rate is known, without a new wait
// (keptBack: 17 s in the recorded runs; before it, 16–17 s later, at 32–33 s).
// It runs 150 s, whatever -short says: skipped with -short.
func TestLateHeavyClient(t *testing.T) {
	if testing.Short() {
		t.Skip("late-heavy-client runs 150 s")
	}
	r := runShortVariant(t, variant(t, "late-heavy-client", 1, policyRoundRobin), "fair-share")
	checkLoadSummary(t, r, "cost")
	h := r.Summary.Heavy
	if h == nil {
		var calls int
		for _, c := range r.Conns {
			if c.Client == 0 {
				calls += c.Calls.at(c.From, int(lateHeavyAt.Seconds())-1)
			}
		}
		t.Fatalf("no heavy summary: events %+v (want one of kind heavy), spread %d (want 1), client 0's calls in the second before %s: %d (want some)",
			r.Events, r.Spread, lateHeavyAt, calls)
	}
	t.Logf("%s", h.text(r.podShortName))
	if h.Neighbours == 0 || len(h.Moved) != h.Neighbours {
		t.Errorf("client 0's pod had %d neighbours when its calls turned heavy and %v moved off (in seconds from then); want some, and every one moved off by the end", h.Neighbours, h.Moved)
	}
	if len(h.Moved) > 0 && h.Moved[0] < 10 {
		t.Errorf("a neighbour moved off %v s after the heavy calls began; want 10 s or more: a shed only the load explains waits 15 s past growth (loadOnlyWant)", h.Moved[0])
	}
	if len(h.Moved) > 0 && h.Moved[len(h.Moved)-1] >= 30 {
		t.Errorf("the last neighbour moved off %v s after the heavy calls began; want under 30 s: one that landed back on the pod goes again without a new 15 s wait (keptBack)", h.Moved[len(h.Moved)-1])
	}
	if h.HeavyMoved {
		t.Error("client 0, whose connection alone is over the mean pod's load, moved; its pod should shed the light ones (a heavier connection moves only while it is at most the pod's excess)")
	}
}
