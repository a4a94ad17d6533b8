package main

import (
	"math"
	"slices"
	"time"

	"github.com/rotorkit/rotor/internal/tofair"
)

// fairFraction is how close to their fair share the new pods must come:
// time to fair share is the time until their rolling share is at least
// this fraction of the fair share for good.
const fairFraction = 0.8

// rollingWindow is the width, in seconds, of the rolling share.
const rollingWindow = 5

// imbalanceWindow is how many final seconds the imbalance covers (fewer
// when the last event was more recent).
const imbalanceWindow = 30

// run is one scenario in one mode: what happened and what it measured.
type run struct {
	Scenario   string   `json:"scenario"`
	Mode       string   `json:"mode"`
	Via        string   `json:"via"`
	Target     string   `json:"target,omitempty"`
	ServerArgs []string `json:"server_args,omitempty"`
	LabPrefix  string   `json:"lab,omitempty"`
	// Cluster is "real" for a run on a real control plane (-cluster real),
	// with kube-proxy's mode and the components' versions; empty for the
	// emulated lab.
	Cluster    string            `json:"cluster,omitempty"`
	ProxyMode  string            `json:"proxy_mode,omitempty"`
	Components map[string]string `json:"components,omitempty"`
	Duration   float64           `json:"duration_s"`
	// Rate is the run's calls per second and Clients its client
	// connections (0 in files from before they were recorded: see params).
	Rate    float64 `json:"rate,omitempty"`
	Clients int     `json:"clients,omitempty"`
	// Load is the scenario's load shape: "" (even, light calls), "zipf" or
	// "cost" (see shape.go); HeavyWork the work units of its heavy calls.
	Load      string `json:"load,omitempty"`
	HeavyWork int    `json:"heavy_work,omitempty"`
	// Spread is the TCP connections per client connection
	// (server.SpreadConnections), when more than one; Policy the clients'
	// balancing policy, when not round_robin.
	Spread    int       `json:"spread,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	Pods      []podInfo `json:"pods,omitempty"`       // initial pods, then new ones
	FinalPods []string  `json:"final_pods,omitempty"` // pods running at the end
	Events    []event   `json:"events,omitempty"`
	Seconds   []second  `json:"seconds,omitempty"`
	// Origin is the load's t = 0 on the wall clock, which the seconds,
	// events and conns count from: a pod's log line at time T (-logs)
	// happened at t = T − Origin. Zero in files from before it was recorded.
	Origin time.Time `json:"origin,omitzero"`
	// Conns is every TCP connection the clients' successful calls used.
	Conns   []connRecord `json:"conns,omitempty"`
	Summary summary      `json:"summary"`
	// LoadAvg is the host's 1-minute load average at the end of the run:
	// latencies mean little when neighbours kept the CPUs busy.
	LoadAvg float64 `json:"load_avg,omitempty"`
	Skipped string  `json:"skipped,omitempty"` // why the run did not happen
	Error   string  `json:"error,omitempty"`   // why the run failed
	// LogsError is what -logs could not copy of the lab's logs, each
	// failure with its path; the run's measurements stand. Empty when every
	// log was copied or -logs was not given.
	LogsError string `json:"logs_error,omitempty"`

	// Fleet is what a run of the fleet scenario records beyond the rest.
	Fleet *fleetRun `json:"fleet,omitempty"`

	// LatencyHist is the histogram of every successful call's latency
	// (bucket → calls; see hist.go), so that -from can recompute p50/p99.
	LatencyHist map[int]uint64 `json:"latency_hist,omitempty"`

	latency hist  // of every successful call
	pids    []int // of the pods' servers and the load generator, for tests
}

type podInfo struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	New   bool   `json:"new,omitempty"` // started by the scenario (scale-up or replacement)
}

// second is what the clients saw in one second of the run.
type second struct {
	T      int            `json:"t"`
	Calls  map[string]int `json:"calls,omitempty"`  // successful calls by pod
	Heavy  map[string]int `json:"heavy,omitempty"`  // of which heavy, by pod
	Failed map[string]int `json:"failed,omitempty"` // failed calls by gRPC code
	// CPUMs is the CPU time, in ms, each pod's server used in this second
	// (from /proc/<pid>/task/*/schedstat, see cpuSampler).
	CPUMs      map[string]float64 `json:"cpu_ms,omitempty"`
	Dials      int                `json:"dials,omitempty"`
	DialErrors int                `json:"dial_errors,omitempty"`
	Missed     int                `json:"missed,omitempty"`
	P50Ms      float64            `json:"p50_ms"`
	P99Ms      float64            `json:"p99_ms"`
}

// window is the new pods' share of the calls in a window after the scale
// event, in seconds from the first whole second after it.
type window struct {
	From  int     `json:"from_s"`
	To    int     `json:"to_s"` // -1: until the end
	Share float64 `json:"share"`
}

// summary is a run's result in numbers.
type summary struct {
	Calls        int            `json:"calls"`  // successful
	Failed       int            `json:"failed"` // failed, any code
	FailedByCode map[string]int `json:"failed_by_code,omitempty"`
	PerPod       map[string]int `json:"per_pod,omitempty"`
	// NewPodCalls counts the calls the scenario's new pods answered.
	NewPodCalls int `json:"new_pod_calls"`
	// FairShare is the new pods' fair share of the calls (3/5 for 2 → 5);
	// 0 when the scenario has no scale event.
	FairShare float64  `json:"fair_share,omitempty"`
	NewShare  []window `json:"new_share,omitempty"`
	// TimeToFair is the time, in seconds after the scale event was
	// complete, at which the new pods' share over the previous 5 s reached
	// 0.8 × FairShare and stayed there until the end; nil when it never
	// did (or there is no scale event).
	TimeToFair *float64 `json:"time_to_fair_s,omitempty"`
	// TimeToFair1s is the same with 1 s instead of 5 s windows: noisier,
	// but without the window's lag.
	TimeToFair1s *float64 `json:"time_to_fair_1s_s,omitempty"`
	// Imbalance is max/mean of the calls per running pod over the last
	// ImbalanceSeconds (30, or since the last event if that is shorter);
	// 1 is perfect.
	Imbalance        float64 `json:"imbalance"`
	ImbalanceSeconds int     `json:"imbalance_s"`

	// The load over the same window as Imbalance. LoadUnit is what load
	// counts: "calls", or "cost" when calls differ in cost (a light call
	// is 1, a heavy one heavyCost).
	LoadUnit string `json:"load_unit,omitempty"`
	// HeaviestConn is the load a second of the heaviest TCP connection of
	// the clients: each connection's mean over the window's seconds it was
	// up for all of (all but its first and last), the highest of them.
	HeaviestConn float64 `json:"heaviest_conn,omitempty"`
	// MeanPodLoad is the load a second of the mean running pod.
	MeanPodLoad float64 `json:"mean_pod_load,omitempty"`
	// LowerBound is max(HeaviestConn, MeanPodLoad) / MeanPodLoad: the
	// lowest ImbalanceLoad a placement of whole connections can reach
	// (a per-call balancer such as nginx can beat it). 0 when the clients
	// reported no connections.
	LowerBound float64 `json:"lower_bound,omitempty"`
	// ImbalanceLoad is max/mean of the load per running pod over the
	// window: Imbalance counted in LoadUnit (the same number for calls).
	ImbalanceLoad float64 `json:"imbalance_load,omitempty"`
	// Imbalance1sP90 is the 90th percentile, over the window's seconds, of
	// each second's max/mean load per running pod: hot spots that move
	// between pods average out in ImbalanceLoad but not here.
	Imbalance1sP90 float64 `json:"imbalance_1s_p90,omitempty"`
	// ImbalanceVsBound and Imbalance1sP90VsBound are ImbalanceLoad and
	// Imbalance1sP90 over LowerBound: 1 is as even as whole connections
	// can be.
	ImbalanceVsBound      float64 `json:"imbalance_vs_bound,omitempty"`
	Imbalance1sP90VsBound float64 `json:"imbalance_1s_p90_vs_bound,omitempty"`
	// ImbalanceCPU is max/mean of the CPU time per running pod's server
	// over the window; 0 when it was not measured.
	ImbalanceCPU float64 `json:"imbalance_cpu,omitempty"`
	// Shares are each running pod's shares of the calls, the load and the
	// CPU time over the window.
	Shares map[string]podShare `json:"shares,omitempty"`

	Dials      int     `json:"dials"`
	DialErrors int     `json:"dial_errors,omitempty"`
	Missed     int     `json:"missed,omitempty"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`

	// Fleet holds a fleet run's own figures (see fleetSummary).
	Fleet *fleetSummary `json:"fleet,omitempty"`
	// Heavy holds a late-heavy-client run's own figures (see heavySummary).
	Heavy *heavySummary `json:"heavy,omitempty"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// fill turns the load generator's lines into seconds and the summary.
// r.Pods, r.FinalPods and r.Events must be set.
func (r *run) fill(lines []loadLine) {
	r.Seconds = nil
	r.latency = hist{}
	for _, l := range lines {
		if l.Type != "second" {
			continue
		}
		if r.Duration > 0 && float64(l.T) >= math.Ceil(r.Duration) {
			continue // runs before the collector held its last second to the end had a stray second past it
		}
		h := hist{counts: l.Latency}
		for _, c := range l.Latency {
			h.n += c
		}
		r.latency.merge(h)
		r.Seconds = append(r.Seconds, second{
			T: l.T, Calls: l.Calls, Heavy: l.Heavy, Failed: l.Failed, CPUMs: l.CPUMs,
			Dials: l.Dials, DialErrors: l.DialErrors, Missed: l.Missed,
			P50Ms: ms(h.quantile(0.5)), P99Ms: ms(h.quantile(0.99)),
		})
	}
	slices.SortFunc(r.Seconds, func(a, b second) int { return a.T - b.T })
	r.Conns = connRecords(lines, r.Duration)
	r.LatencyHist = r.latency.counts
	r.Summary = r.analyze()
}

// refill recomputes a run read back from result.json, with the analysis
// of this version of the program.
func (r *run) refill() {
	if r.Skipped != "" || r.Error != "" {
		return
	}
	lines := make([]loadLine, 0, len(r.Seconds))
	for _, s := range r.Seconds {
		lines = append(lines, loadLine{Type: "second", T: s.T, Calls: s.Calls, Heavy: s.Heavy, Failed: s.Failed,
			Dials: s.Dials, DialErrors: s.DialErrors, Missed: s.Missed, CPUMs: s.CPUMs})
	}
	r.connsInto(lines)
	byT := map[int]second{}
	for _, s := range r.Seconds {
		byT[s.T] = s
	}
	old := r.Summary
	stored := r.LatencyHist
	r.fill(lines)
	// Per-second latency quantiles cannot be recomputed from the file;
	// keep them, and the run's own if the file has no histogram.
	for i, s := range r.Seconds {
		r.Seconds[i].P50Ms, r.Seconds[i].P99Ms = byT[s.T].P50Ms, byT[s.T].P99Ms
	}
	r.latency = hist{counts: stored}
	for _, c := range stored {
		r.latency.n += c
	}
	r.LatencyHist = stored
	if r.latency.n > 0 {
		r.Summary.P50Ms, r.Summary.P99Ms = ms(r.latency.quantile(0.5)), ms(r.latency.quantile(0.99))
	} else {
		r.Summary.P50Ms, r.Summary.P99Ms = old.P50Ms, old.P99Ms
	}
}

// scaleEvent returns the completion time of the first scale event.
func (r *run) scaleEvent() (float64, bool) {
	e, ok := r.firstEvent(eventScale)
	return e.Done, ok
}

func (r *run) analyze() summary {
	s := summary{FailedByCode: map[string]int{}, PerPod: map[string]int{}}
	isNew := map[string]bool{}
	for _, p := range r.Pods {
		isNew[p.Name] = p.New
		s.PerPod[p.Name] = 0
	}
	// Dense per-second series, indexed by second.
	n := 0
	if len(r.Seconds) > 0 {
		n = r.Seconds[len(r.Seconds)-1].T + 1
	}
	all := make([]float64, n)
	fresh := make([]float64, n)
	for _, sec := range r.Seconds {
		for pod, c := range sec.Calls {
			s.Calls += c
			s.PerPod[pod] += c
			all[sec.T] += float64(c)
			if isNew[pod] {
				s.NewPodCalls += c
				fresh[sec.T] += float64(c)
			}
		}
		for code, c := range sec.Failed {
			s.Failed += c
			s.FailedByCode[code] += c
		}
		s.Dials += sec.Dials
		s.DialErrors += sec.DialErrors
		s.Missed += sec.Missed
	}
	s.P50Ms, s.P99Ms = ms(r.latency.quantile(0.5)), ms(r.latency.quantile(0.99))

	if ev, ok := r.scaleEvent(); ok && len(r.FinalPods) > 0 {
		newPods := 0
		for _, name := range r.FinalPods {
			if isNew[name] {
				newPods++
			}
		}
		s.FairShare = float64(newPods) / float64(len(r.FinalPods))
		first := int(math.Ceil(ev))
		for _, w := range [][2]int{{0, 5}, {5, 10}, {10, 20}, {20, -1}} {
			from, to := first+w[0], n
			if w[1] >= 0 {
				to = min(first+w[1], n)
			}
			if from >= to {
				continue
			}
			s.NewShare = append(s.NewShare, window{From: w[0], To: w[1], Share: ratio(sum(fresh[from:to]), sum(all[from:to]))})
		}
		s.TimeToFair = timeToFair(fresh, all, ev, fairFraction*s.FairShare, rollingWindow)
		s.TimeToFair1s = timeToFair(fresh, all, ev, fairFraction*s.FairShare, 1)
	}

	// Imbalance over the last seconds, among the pods running at the end.
	from, n := r.imbalanceWindowOf()
	s.ImbalanceSeconds = n - from
	var counts []float64
	for _, name := range r.FinalPods {
		c := 0.0
		for _, sec := range r.Seconds {
			if sec.T >= from {
				c += float64(sec.Calls[name])
			}
		}
		counts = append(counts, c)
	}
	if m := sum(counts) / float64(max(len(counts), 1)); m > 0 {
		s.Imbalance = math.Round(slices.Max(counts)/m*1000) / 1000
	}
	r.analyzeLoad(&s, from, n)
	s.Fleet = r.analyzeFleet(s)
	s.Heavy = r.analyzeHeavy()
	return s
}

// timeToFair returns tofair.Seconds, or nil when the share did not get
// there for good.
func timeToFair(fresh, all []float64, ev, threshold float64, width int) *float64 {
	if t, ok := tofair.Seconds(fresh, all, ev, threshold, width); ok {
		return &t
	}
	return nil
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}
