package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The load a pod or a connection carries is counted in calls, or, when the
// calls differ in cost, in cost units: a light call is 1, a heavy call
// heavyCost. Imbalances of load are max/mean over the pods running at the
// end of the run, over the same window as summary.Imbalance.

// connRecord is one TCP connection of the clients, as their successful
// calls saw it: its calls second by second, from its first second.
type connRecord struct {
	// ID is the client connection's index and the TCP connection's local
	// address: "3/198.18.0.2:40512".
	ID     string `json:"id"`
	Client int    `json:"client"`
	// Pod answered its calls; "*" when several did (behind nginx).
	Pod   string `json:"pod,omitempty"`
	From  int    `json:"from_s"` // the second of its first call
	Calls series `json:"calls"`  // successful calls in seconds From, From+1, …
	Heavy series `json:"heavy,omitempty"`
}

// series is a count per second. In JSON it is one string of numbers
// separated by spaces, so that result.json stays small and readable.
type series []int

func (s series) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	for i, v := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(v))
	}
	return json.Marshal(b.String())
}

func (s *series) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*s = nil
	for _, f := range strings.Fields(str) {
		v, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("series %q: %w", str, err)
		}
		*s = append(*s, v)
	}
	return nil
}

// at returns the count of second t, 0 outside the series.
func (s series) at(from, t int) int {
	if i := t - from; i >= 0 && i < len(s) {
		return s[i]
	}
	return 0
}

// connRecords gathers the per-connection counts of the load generator's
// lines into one record per connection, ordered by first second and ID.
// Seconds at or after duration (when positive) are left out, as in fill.
func connRecords(lines []loadLine, duration float64) []connRecord {
	byID := map[string]*connRecord{}
	for _, l := range lines {
		if l.Type != "second" || (duration > 0 && float64(l.T) >= math.Ceil(duration)) {
			continue
		}
		for id, c := range l.Conns {
			r := byID[id]
			if r == nil {
				r = &connRecord{ID: id, Client: c.Client, Pod: c.Pod, From: l.T}
				byID[id] = r
			} else if r.Pod != c.Pod {
				r.Pod = "*"
			}
			if l.T < r.From { // lines out of order: shift the series
				shift := r.From - l.T
				r.Calls = append(make(series, shift), r.Calls...)
				if r.Heavy != nil {
					r.Heavy = append(make(series, shift), r.Heavy...)
				}
				r.From = l.T
			}
			i := l.T - r.From
			for len(r.Calls) <= i {
				r.Calls = append(r.Calls, 0)
			}
			r.Calls[i] += c.Calls
			if c.Heavy > 0 {
				for len(r.Heavy) <= i {
					r.Heavy = append(r.Heavy, 0)
				}
				r.Heavy[i] += c.Heavy
			}
		}
	}
	out := make([]connRecord, 0, len(byID))
	for _, r := range byID {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b connRecord) int { return cmp.Or(a.From-b.From, strings.Compare(a.ID, b.ID)) })
	if len(out) == 0 {
		return nil
	}
	return out
}

// connsInto puts the run's connection records back into lines, the per-
// second lines that refill rebuilt from the run's seconds.
func (r *run) connsInto(lines []loadLine) {
	at := map[int]int{}
	for i, l := range lines {
		at[l.T] = i
	}
	for _, c := range r.Conns {
		for k, n := range c.Calls {
			i, ok := at[c.From+k]
			if !ok || (n == 0 && c.Heavy.at(c.From, c.From+k) == 0) {
				continue
			}
			if lines[i].Conns == nil {
				lines[i].Conns = map[string]*connSecond{}
			}
			lines[i].Conns[c.ID] = &connSecond{Client: c.Client, Pod: c.Pod, Calls: n, Heavy: c.Heavy.at(c.From, c.From+k)}
		}
	}
}

// podShare is a pod's share of what all running pods got over the window.
type podShare struct {
	Calls float64 `json:"calls"`
	// Load is the share of the load when it is counted in cost units.
	Load float64 `json:"load,omitempty"`
	// CPU is the share of the pods' CPU time, CPUSeconds the pod's own.
	CPU        float64 `json:"cpu,omitempty"`
	CPUSeconds float64 `json:"cpu_s,omitempty"`
}

// loadUnit is what the run's load counts: "cost" when it has heavy calls.
func (r *run) loadUnit() string {
	if loadShape(r.Load).hasHeavy() {
		return "cost"
	}
	for _, s := range r.Seconds {
		if len(s.Heavy) > 0 {
			return "cost"
		}
	}
	return "calls"
}

// load is the load of calls calls of which heavy are heavy, in unit.
func load(unit string, calls, heavy int) float64 {
	if unit == "cost" {
		return float64(calls) + (heavyCost-1)*float64(heavy)
	}
	return float64(calls)
}

// imbalanceWindowOf returns the seconds [from, n) that the imbalances
// cover: the last imbalanceWindow seconds of the run, or those since the
// last event if it ended later.
func (r *run) imbalanceWindowOf() (from, n int) {
	if len(r.Seconds) > 0 {
		n = r.Seconds[len(r.Seconds)-1].T + 1
	}
	last := 0.0
	for _, e := range r.Events {
		last = max(last, e.Done)
	}
	from = max(n-imbalanceWindow, int(math.Ceil(last)), 0)
	if from >= n {
		from = max(n-1, 0)
	}
	return from, n
}

// analyzeLoad fills the load measures of s over the seconds [from, to).
func (r *run) analyzeLoad(s *summary, from, to int) {
	unit := r.loadUnit()
	s.LoadUnit = unit
	pods := r.FinalPods
	if len(pods) == 0 || to <= from {
		return
	}
	podCalls := make([]float64, len(pods))
	podLoad := make([]float64, len(pods))
	podCPU := make([]float64, len(pods))
	haveCPU := false
	var perSecond []float64 // each second's max/mean load
	for _, sec := range r.Seconds {
		if sec.T < from || sec.T >= to {
			continue
		}
		loads := make([]float64, len(pods))
		for i, name := range pods {
			loads[i] = load(unit, sec.Calls[name], sec.Heavy[name])
			podCalls[i] += float64(sec.Calls[name])
			podLoad[i] += loads[i]
			if ms, ok := sec.CPUMs[name]; ok {
				podCPU[i] += ms
				haveCPU = true
			}
		}
		if m := sum(loads) / float64(len(loads)); m > 0 {
			perSecond = append(perSecond, slices.Max(loads)/m)
		}
	}
	s.ImbalanceLoad = maxOverMean(podLoad)
	s.Imbalance1sP90 = round3(quantile(perSecond, 0.9))
	s.MeanPodLoad = round3(sum(podLoad) / float64(to-from) / float64(len(pods)))
	if hc, ok := heaviestConn(r.Conns, unit, from, to); ok && s.MeanPodLoad > 0 {
		s.HeaviestConn = round3(hc)
		s.LowerBound = round3(max(hc, s.MeanPodLoad) / s.MeanPodLoad)
		s.ImbalanceVsBound = round3(s.ImbalanceLoad / s.LowerBound)
		s.Imbalance1sP90VsBound = round3(s.Imbalance1sP90 / s.LowerBound)
	}
	if haveCPU {
		s.ImbalanceCPU = maxOverMean(podCPU)
	}
	s.Shares = map[string]podShare{}
	for i, name := range pods {
		sh := podShare{Calls: ratio(podCalls[i], sum(podCalls))}
		if unit == "cost" {
			sh.Load = ratio(podLoad[i], sum(podLoad))
		}
		if haveCPU {
			sh.CPU = ratio(podCPU[i], sum(podCPU))
			sh.CPUSeconds = math.Round(podCPU[i]) / 1000
		}
		s.Shares[name] = sh
	}
}

// heaviestConn returns the highest load a second of any connection over
// the seconds [from, to) that it was up for all of: a connection's first
// and last seconds are partial (it was dialled, or it drained, during
// them), so each connection counts with the mean over the others. ok is
// false when no connection has such a second in the window.
func heaviestConn(conns []connRecord, unit string, from, to int) (heaviest float64, ok bool) {
	for _, c := range conns {
		lo, hi := max(from, c.From+1), min(to-1, c.From+len(c.Calls)-2)
		if lo > hi {
			continue
		}
		total := 0.0
		for t := lo; t <= hi; t++ {
			total += load(unit, c.Calls.at(c.From, t), c.Heavy.at(c.From, t))
		}
		heaviest, ok = max(heaviest, total/float64(hi-lo+1)), true
	}
	return heaviest, ok
}

// maxOverMean is max/mean of xs, rounded to 3 decimals; 0 when the mean is.
func maxOverMean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	m := sum(xs) / float64(len(xs))
	if m <= 0 {
		return 0
	}
	return round3(slices.Max(xs) / m)
}

// quantile returns the nearest-rank q-quantile of xs: the smallest value
// with at least a fraction q of xs at or below it; 0 for no values.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(xs))
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
