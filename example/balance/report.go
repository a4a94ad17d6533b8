package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotorkit/rotor/example/internal/tally"
)

// result is everything one invocation measured; it is result.json.
type result struct {
	Started  time.Time       `json:"started"`
	Host     string          `json:"host"`
	Params   params          `json:"params"`
	Runs     []run           `json:"runs,omitempty"`
	CallCost *callCostResult `json:"call_cost,omitempty"`
	Overhead *overheadResult `json:"overhead,omitempty"`
}

// shortName is how tables and plots name the i-th pod of a run: p0, p1, …
// in creation order, with a star for the pods the scenario started.
func shortName(i int, p podInfo) string {
	if p.New {
		return fmt.Sprintf("p%d*", i)
	}
	return fmt.Sprintf("p%d", i)
}

// podShortName is the pod's shortName in the run ("p2"), or name itself
// when the run has no such pod.
func (r run) podShortName(name string) string {
	for i, p := range r.Pods {
		if p.Name == name {
			return shortName(i, p)
		}
	}
	return name
}

func fmtSecs(p *float64) string {
	if p == nil {
		return "never"
	}
	return fmt.Sprintf("%.1fs", *p)
}

// writeTable prints the runs and the overhead benchmark.
func writeTable(w io.Writer, res *result) {
	if len(res.Runs) > 0 {
		p := res.Params
		heavyNote := ""
		if i := slices.IndexFunc(res.Runs, func(r run) bool { return r.Summary.Heavy != nil }); i >= 0 {
			r := res.Runs[i]
			heavyNote = fmt.Sprintf(" (late-heavy-client has its own: %d pods, %.0f calls/s, %.0f s per run, no scale event, client 0's calls all heavy from %.0f s)",
				len(r.Pods), r.Rate, r.Duration, r.Summary.Heavy.At)
		}
		if p.Cluster == clusterReal {
			v := componentVersions()
			fmt.Fprintf(w, "Balance on a real Kubernetes control plane (kube-apiserver, controllers, scheduler and kube-proxy %s in %s mode, CoreDNS %s, etcd %s; 2 Nodes; example/k8s applied): %d client connections, %.0f calls/s, %s per run, scale event at %s%s.\n",
				v["kube-proxy"], p.ProxyMode, v["coredns"], v["etcd"], p.Conns, p.Rate, p.Duration, p.ScaleAt, heavyNote)
			fmt.Fprintf(w, "Modes: default = example/k8s's server flags; the others replace its rotation flags (-max-connection-age, -peer-*, -rotate-spread): none = no rotation; age = max-connection-age %s; peers = age %s + peer watcher (interval %s, spread %s). Every mode keeps the manifests' grace, shutdown delay and drain timeout (each run's server_args in result.json). A rollout is kubectl rollout restart, paced by the Deployment's strategy.\n",
				p.Age, p.PeerAge, p.PeerInterval, p.Spread)
		} else {
			fleetNote := ""
			if slices.ContainsFunc(res.Runs, func(r run) bool { return r.Fleet != nil }) {
				fleetNote = " (the fleet scenario has its own sizes and timeline: see Fleet below)"
			}
			fmt.Fprintf(w, "Balance in the kube-proxy lab: %d client connections, %.0f calls/s, %s per run, scale event at %s%s%s.\n",
				p.Conns, p.Rate, p.Duration, p.ScaleAt, fleetNote, heavyNote)
			fmt.Fprintf(w, "Modes: none = no rotation; age = max-connection-age %s; peers = age %s + peer watcher (interval %s, spread %s). Grace %s, shutdown delay %s, drain timeout %s.\n",
				p.Age, p.PeerAge, p.PeerInterval, p.Spread, p.Grace, p.ShutdownDelay, p.DrainTimeout)
		}
		fmt.Fprintf(w, "skewed-clients: client call rates Zipf (s = 1); skewed-cost: %.0f calls/s, %.0f %% of them heavy (%d work units, sized to cost %.0f light calls: see call cost), all from %.0f %% of the connections; one-heavy-client: 1 client connection over k TCP connections (k=N); wrr: weighted_round_robin clients, servers with -orca.\n",
			p.Rate*costRateShare, 100*heavyCallShare, p.HeavyWork, heavyCost, 100*heavyConnShare)
		if p.DNSMinInterval > 0 {
			fmt.Fprintf(w, "Clients re-resolve dns:/// targets at most every %s (grpc-go's default floor is 30s).\n", p.DNSMinInterval)
		}
		tw := newTable(w, "scenario\tmode\tcalls\tfailed\tmissed\tnew share\tto fair 5s\t(1s)\timbalance\tconns\tp50 ms\tp99 ms\t",
			"new share: the new pods' share of the calls in the windows 0-5, 5-10, 10-20 s and 20 s-end after the scale event (fair: the new pods' part of the pods, 3/5 = 0.60 for 2 → 5).",
			"missed: call slots the load generator skipped because it was stalled for over a second (a busy machine), not failures.",
			"to fair: time after the scale event until the new pods' trailing 5 s (1 s) share is >= 0.8 x fair for good. imbalance: max/mean calls per pod over the last 30 s (since the last event if later).")
		for _, r := range res.Runs {
			if r.Skipped != "" || r.Error != "" {
				why := r.Skipped
				if r.Error != "" {
					why = "FAILED: " + firstLine(r.Error)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\n", r.label(), r.Mode, why)
				continue
			}
			s := r.Summary
			shares := "-"
			if len(s.NewShare) > 0 {
				var parts []string
				for _, win := range s.NewShare {
					parts = append(parts, fmt.Sprintf("%.2f", win.Share))
				}
				shares = strings.Join(parts, "/")
			}
			toFair, toFair1 := "-", "-"
			if s.FairShare > 0 {
				toFair, toFair1 = fmtSecs(s.TimeToFair), "("+fmtSecs(s.TimeToFair1s)+")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%.2f\t%d\t%.2f\t%.2f\t\n",
				r.label(), r.Mode, s.Calls, failedText(s), s.Missed, shares, toFair, toFair1, s.Imbalance, s.Dials, s.P50Ms, s.P99Ms)
		}
		tw.Flush()
		writeLoadTable(w, res)
		writeFleetTable(w, res)

		fmt.Fprintln(w, "\nCalls per pod (p0, p1, … in creation order; * = started by the scenario):")
		for _, r := range res.Runs {
			if r.Skipped != "" || r.Error != "" {
				continue
			}
			var parts []string
			for i, p := range r.Pods {
				parts = append(parts, fmt.Sprintf("%s %d", shortName(i, p), r.Summary.PerPod[p.Name]))
			}
			fmt.Fprintf(w, "  %-26s %s\n", r.label()+"/"+r.Mode+":", strings.Join(parts, ", "))
		}
		writeShares(w, res.Runs)
		fmt.Fprintln(w, "\nSummary:")
		for _, r := range res.Runs {
			fmt.Fprintf(w, "  %s\n", summaryLine(r))
		}
	}
	if c := res.CallCost; c != nil {
		if len(res.Runs) > 0 {
			fmt.Fprintln(w)
		}
		writeCallCost(w, c)
	}
	if o := res.Overhead; o != nil {
		if len(res.Runs) > 0 || res.CallCost != nil {
			fmt.Fprintln(w)
		}
		writeOverhead(w, o)
	}
}

// failedText is a run's failed calls with their gRPC codes: "0", or
// "3 (DeadlineExceeded 1, Unavailable 2)".
func failedText(s summary) string {
	if s.Failed == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", s.Failed, tally.Counts(s.FailedByCode))
}

// label names the run's scenario variant: "one-heavy-client k=5",
// "skewed-cost-headless wrr".
func (r run) label() string { return label(r.Scenario, r.Spread, r.Policy) }

// summaryLine is one run in one sentence.
func summaryLine(r run) string {
	name := r.label() + "/" + r.Mode
	switch {
	case r.Skipped != "":
		return name + ": skipped: " + r.Skipped
	case r.Error != "":
		return name + ": FAILED: " + firstLine(r.Error)
	}
	s := r.Summary
	line := fmt.Sprintf("%s: %d calls, %s failed", name, s.Calls, failedText(s))
	if s.Missed > 0 {
		line += fmt.Sprintf(", %d missed", s.Missed)
	}
	if s.FairShare > 0 {
		line += fmt.Sprintf("; new pods %d calls", s.NewPodCalls)
		if n := len(s.NewShare); n > 0 {
			w := s.NewShare[n-1]
			line += fmt.Sprintf(", %.0f%% of the calls %s after the scale event", 100*w.Share, w.label())
		}
		line += fmt.Sprintf(" (fair %.0f%%), fair share after %s", 100*s.FairShare, fmtSecs(s.TimeToFair))
	}
	if s.Heavy != nil {
		line += "; " + s.Heavy.text(r.podShortName)
	}
	line += fmt.Sprintf("; imbalance %.2f over the last %d s", s.Imbalance, s.ImbalanceSeconds)
	if s.LoadUnit == "cost" {
		line += fmt.Sprintf(" (%.2f of cost)", s.ImbalanceLoad)
	}
	if s.LowerBound > 0 {
		line += fmt.Sprintf(", %.2f × the bound %.2f", s.ImbalanceVsBound, s.LowerBound)
	}
	if s.Imbalance1sP90 > 0 {
		line += fmt.Sprintf(", p90 of 1 s %.2f", s.Imbalance1sP90)
	}
	if s.ImbalanceCPU > 0 {
		line += fmt.Sprintf(", CPU %.2f", s.ImbalanceCPU)
	}
	return line + fmt.Sprintf("; %d connections; p50 %.2f ms, p99 %.2f ms (host load %.1f)",
		s.Dials, s.P50Ms, s.P99Ms, r.LoadAvg)
}

// newTable prints a table's legend, a line each, then an empty line, and
// returns a right-aligned tabwriter on w with the column names (tab
// separated, as in the rows) written.
func newTable(w io.Writer, columns string, legend ...string) *tabwriter.Writer {
	for _, line := range legend {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, columns)
	return tw
}

// writeLoadTable prints the load measures of every run: the lower bound of
// per-connection placement and the imbalances of load and CPU.
func writeLoadTable(w io.Writer, res *result) {
	tw := newTable(w, "scenario\tmode\tcalls/s\tunit\theaviest conn\tmean pod\tbound\timbalance\t/bound\tp90 1s\t/bound\tcpu\t",
		fmt.Sprintf("\nLoad over the same window as imbalance. unit: calls, or cost (a light call 1, a heavy one %.0f).", heavyCost),
		"heaviest conn: load/s of the clients' heaviest TCP connection (mean over the seconds it was up for all of); mean pod: load/s of the mean pod.",
		"bound: max(heaviest conn, mean pod) / mean pod, the lowest imbalance whole connections can reach (per-call nginx can go below).",
		"imbalance: max/mean load per pod over the window; p90 1s: 90th percentile over its seconds of each second's max/mean; /bound: over bound; cpu: max/mean CPU time per pod's server (/proc/<pid>/task/*/schedstat).")
	for _, r := range res.Runs {
		if r.Skipped != "" || r.Error != "" {
			continue
		}
		s := r.Summary
		num := func(v float64, format string) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf(format, v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.label(), r.Mode, num(r.Rate, "%.0f"), s.LoadUnit,
			num(s.HeaviestConn, "%.1f"), num(s.MeanPodLoad, "%.1f"), num(s.LowerBound, "%.2f"),
			num(s.ImbalanceLoad, "%.2f"), num(s.ImbalanceVsBound, "%.2f"), num(s.Imbalance1sP90, "%.2f"),
			num(s.Imbalance1sP90VsBound, "%.2f"), num(s.ImbalanceCPU, "%.2f"))
	}
	tw.Flush()
}

// writeShares prints each run's per-pod shares of the calls (of the cost)
// and of the CPU over the imbalance window.
func writeShares(w io.Writer, runs []run) {
	fmt.Fprintln(w, "\nShares per pod over the imbalance window, % of calls / (of cost /) of CPU:")
	for _, r := range runs {
		if r.Skipped != "" || r.Error != "" || len(r.Summary.Shares) == 0 {
			continue
		}
		var parts []string
		for i, p := range r.Pods {
			sh, ok := r.Summary.Shares[p.Name]
			if !ok {
				continue
			}
			v := []string{fmt.Sprintf("%.0f", 100*sh.Calls)}
			if r.Summary.LoadUnit == "cost" {
				v = append(v, fmt.Sprintf("%.0f", 100*sh.Load))
			}
			if r.Cluster == clusterReal {
				v = append(v, "-") // the node agents' PIDs are not known
			} else {
				v = append(v, fmt.Sprintf("%.0f", 100*sh.CPU))
			}
			parts = append(parts, shortName(i, p)+" "+strings.Join(v, "/"))
		}
		fmt.Fprintf(w, "  %-30s %s\n", r.label()+"/"+r.Mode+":", strings.Join(parts, ", "))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// label names the window, such as "5-10 s" or "20 s-end".
func (w window) label() string {
	if w.To < 0 {
		return fmt.Sprintf("%d s-end", w.From)
	}
	return fmt.Sprintf("%d-%d s", w.From, w.To)
}
