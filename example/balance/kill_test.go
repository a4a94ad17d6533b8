package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/kubelab"
)

// killTimes says which pod a kill run killed and when, in seconds since the
// load's origin.
type killTimes struct {
	pod     kubelab.Pod
	kill    float64 // KillPod called
	dead    float64 // KillPod returned: the server is gone, its connections reset
	remove  float64 // DeletePod called
	removed float64 // DeletePod returned: the endpoint is out of iptables and DNS
}

// runKill runs the load against 3 pods behind the ClusterIP, in mode age,
// and SIGKILLs the first pod at killAt without touching its endpoint, as a
// crash does; removeAfter later it deletes the pod, which takes its endpoint
// out as Kubernetes does once the readiness probe has failed.
func runKill(ctx context.Context, p params, bins binaries, killAt, removeAfter time.Duration, progress func(string)) (r run, kt killTimes, err error) {
	m, ok := findMode("age")
	if !ok {
		return r, kt, fmt.Errorf("no mode age")
	}
	r = run{Scenario: "kill", Mode: m.name, Via: string(viaClusterIP), Duration: p.Duration.Seconds()}
	var args []string
	lab, err := kubelab.New(ctx, kubelab.Config{
		TerminationGracePeriod: p.terminationGrace(),
		ServerCommand:          func(kubelab.Pod) kubelab.Command { return kubelab.Command{Path: bins.server, Args: args} },
	})
	if err != nil {
		return r, kt, err
	}
	lab.CloseOnSignal()
	defer func() {
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	r.LabPrefix = lab.Prefix()
	args = serverArgs(scenario{}, m, p, "dns://"+lab.DNSServer()+"/"+lab.HeadlessName())
	r.ServerArgs = args
	if err := lab.ScaleTo(ctx, 3); err != nil {
		return r, kt, err
	}
	pods := lab.Pods()
	for _, pod := range pods {
		r.Pods = append(r.Pods, podInfo{Name: pod.Name, Index: pod.Index})
		r.pids = append(r.pids, pod.PID)
	}
	kt.pod = pods[0]

	r.Target = "passthrough:///" + lab.ClusterIP(grpcPort)
	lc := loadConfig{Target: r.Target, Conns: p.Conns, Rate: p.Rate, Duration: p.Duration, CallTimeout: p.CallTimeout}
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	load, err := startLabLoad(loadCtx, lab.ClientCommand(loadCtx, bins.load), lc, nil)
	if err != nil {
		return r, kt, err
	}
	origin := load.origin

	since := func() float64 { return time.Since(origin).Seconds() }
	sleepUntil := func(at time.Time) error {
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-loadCtx.Done():
			return loadCtx.Err()
		}
	}
	actErr := func() error {
		if err := sleepUntil(origin.Add(killAt)); err != nil {
			return err
		}
		kt.kill = since()
		if err := lab.KillPod(kt.pod.Index); err != nil {
			return err
		}
		kt.dead = since()
		progress(fmt.Sprintf("t=%.2fs: SIGKILL %s (gone at %.2fs), still an endpoint", kt.kill, kt.pod.Name, kt.dead))
		if err := sleepUntil(origin.Add(killAt + removeAfter)); err != nil {
			return err
		}
		kt.remove = since()
		if err := lab.DeletePod(loadCtx, kt.pod.Index); err != nil {
			return err
		}
		kt.removed = since()
		progress(fmt.Sprintf("t=%.2fs: %s deleted, endpoint removed by %.2fs", kt.remove, kt.pod.Name, kt.removed))
		return nil
	}()
	if actErr != nil {
		cancelLoad()
	}
	err = <-load.done
	r.pids = append(r.pids, load.pid())
	if err == nil {
		err = actErr
	}
	if err != nil {
		return r, kt, fmt.Errorf("%w\nlab logs:\n%s", err, lab.Logs(1500))
	}
	r.Events = []event{
		{Label: "kill " + kt.pod.Name, Kind: "kill", At: kt.kill, Done: kt.dead},
		{Label: "delete " + kt.pod.Name, Kind: "delete", At: kt.remove, Done: kt.removed},
	}
	for _, pod := range lab.Pods() {
		r.FinalPods = append(r.FinalPods, pod.Name)
	}
	r.LoadAvg = loadAverage()
	r.fill(load.lines)
	return r, kt, nil
}

// reconnectTail is the longest a client connection can still be failing
// calls after the dead pod's endpoint was removed, for an endpoint window of
// window seconds (kill → removal). A connection that kube-proxy sends to the
// dead pod is refused at once and fails its calls fast (round_robin's only
// subchannel is in TRANSIENT_FAILURE) until it redials after grpc-go's
// reconnect backoff, which server.ClientOptions leaves at its default: 1 s
// after the first failed dial, ×1.6 after each further one, ±20 % jitter.
// The most refusals fit in the window when the first is at the kill and
// each backoff is at its shortest (0.8×); the backoff after the last
// refusal is then at most 1.2 × 1.6^k.
func reconnectTail(window float64) float64 {
	backoff, next := 1.0, 0.0 // next: the earliest a further refused dial can come
	for next+0.8*backoff <= window {
		next += 0.8 * backoff
		backoff *= 1.6
	}
	return 1.2 * backoff
}

// TestKillPod kills one of 3 pods with SIGKILL under load, leaves its
// endpoint in place for a second (the readiness probe has not failed yet),
// then removes it. The clients must recover on the other pods: failures only
// around the kill, bounded by the dead pod's share of the calls, none once
// the endpoint is gone and the backoff is over.
func TestKillPod(t *testing.T) {
	bins := labBinaries(t)
	p := defaultParams(true) // age 2 s, 20 connections
	p.Rate = 300
	p.Duration = 14 * time.Second
	// Calls take about a millisecond; a connection stuck on the dead pod
	// must show up as failures in the run, not as one call waiting 30 s.
	p.CallTimeout = 5 * time.Second
	const killAt, removeAfter = 4 * time.Second, time.Second

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, kt, err := runKill(ctx, p, bins, killAt, removeAfter, func(s string) { t.Log(s) })
	if r.LabPrefix != "" {
		checkNoLeftovers(t, r)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log(summaryLine(r))

	n := int(math.Ceil(p.Duration.Seconds()))
	if len(r.Seconds) != n {
		t.Fatalf("the run has %d seconds, want %d", len(r.Seconds), n)
	}
	var timeline strings.Builder
	for _, s := range r.Seconds {
		fmt.Fprintf(&timeline, "  t=%2d ok %v failed %v dials %d missed %d\n", s.T, s.Calls, s.Failed, s.Dials, s.Missed)
	}
	t.Logf("per second (killed %s at %.2fs, endpoint removed by %.2fs):\n%s", kt.pod.Name, kt.kill, kt.removed, timeline.String())

	// (1) Failures only around the kill: none in the seconds before it and
	// none once every client had to have redialled through the updated
	// rules (the removal plus the reconnect backoff, plus a second for the
	// timers of a busy machine), and in any case none in the last 3 s. A
	// call counts in the second it began, and one that began up to
	// inFlight before the kill may still run on the pod at it and fail
	// with it: with the kill at 4.00 s, one call of second 3 did (calls
	// take about a millisecond, their p99 up to tens on a busy host).
	const inFlight = 100 * time.Millisecond
	window := kt.removed - kt.kill
	tail := reconnectTail(window)
	killSec := int(math.Floor(kt.kill - inFlight.Seconds()))
	quietFrom := min(int(math.Ceil(kt.removed+tail+1)), n-3)
	for _, s := range r.Seconds {
		f := sumMap(s.Failed)
		if f > 0 && s.T < killSec {
			t.Errorf("t=%ds, before the kill at %.2fs: %d calls failed %v", s.T, kt.kill, f, s.Failed)
		}
		if f > 0 && s.T >= quietFrom {
			t.Errorf("t=%ds, after the clients had to have recovered (from %ds): %d calls failed %v", s.T, quietFrom, f, s.Failed)
		}
	}

	// (2) The failures are bounded by the dead pod's share of the calls
	// while it could be reached. A call fails only on a client connection
	// whose dial kube-proxy sent to the dead pod (or that was on it at the
	// kill; at ~1 ms per call, fewer than one call is in flight then).
	// While the pod is an endpoint each new connection goes to it with
	// probability 1/3, and such a connection fails its calls until it
	// redials, at most tail after the removal. The dead pod's share of the
	// calls over the endpoint window plus that tail is therefore a bound:
	//
	//	failed ≤ 1/3 × rate × (window + tail)
	//
	// (≈ 1/3 × 300 × (1.0 + 1.9) ≈ 295). It errs high: each refused dial
	// costs one connection's calls for one backoff, ≈ rate/conns × 1 s = 15
	// calls, and a refused connection sits out ~1 s of backoff while an
	// accepted one lives ~2 s (the age), so fewer than 1/3 of the
	// connections point at the dead pod at any time. If the kill broke every
	// connection instead, or clients kept failing, the count would approach
	// rate × (window + tail).
	share := 1.0 / float64(len(r.Pods))
	bound := int(math.Ceil(share * p.Rate * (window + tail)))
	failed := r.Summary.Failed
	t.Logf("failed calls: %d %v of %d (%.2f%%); bound %d = 1/%d × %g/s × (%.2f s endpoint window + %.2f s reconnect backoff); dial errors %d",
		failed, r.Summary.FailedByCode, r.Summary.Calls+failed, 100*float64(failed)/float64(max(r.Summary.Calls+failed, 1)),
		bound, len(r.Pods), p.Rate, window, tail, r.Summary.DialErrors)
	if failed > bound {
		t.Errorf("%d calls failed, more than the dead pod's share of the calls while it could be reached (%d)", failed, bound)
	}

	// The kill really happened: the pod answered before it and never after.
	deadSec := int(math.Floor(kt.dead))
	before, after := 0, 0
	for _, s := range r.Seconds {
		switch {
		case s.T < killSec:
			before += s.Calls[kt.pod.Name]
		case s.T > deadSec:
			after += s.Calls[kt.pod.Name]
		}
	}
	if before == 0 {
		t.Errorf("%s answered no call before the kill: it was not serving", kt.pod.Name)
	}
	if after != 0 {
		t.Errorf("%s answered %d calls started after it was killed", kt.pod.Name, after)
	}

	// (3) The surviving pods served the calls after the kill: each of them
	// answered calls once the clients had recovered, and together they
	// answered nearly every call of the last 3 s (a client that stopped
	// calling would be missing there).
	if len(r.FinalPods) != 2 {
		t.Errorf("pods at the end: %v, want the 2 survivors", r.FinalPods)
	}
	for _, name := range r.FinalPods {
		c := 0
		for _, s := range r.Seconds {
			if s.T >= quietFrom {
				c += s.Calls[name]
			}
		}
		if c == 0 {
			t.Errorf("survivor %s answered no call from t=%ds", name, quietFrom)
		}
	}
	ok, missed := 0, 0
	for _, s := range r.Seconds[n-3:] {
		ok += sumMap(s.Calls)
		missed += s.Missed
	}
	if want := int(0.9*p.Rate*3) - missed; ok < want {
		t.Errorf("the last 3 s had %d successful calls (%d missed), want at least %d of %g", ok, missed, want, p.Rate*3)
	}
	// (4) No namespace or process of the lab is left: checkNoLeftovers above.
}
