package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/rotorkit/rotor/internal/kubelab"
)

// defaultHeavyWork is the work units of a heavy call of the skewed-cost
// scenarios when neither -heavy-work nor a call-cost run in the same
// invocation sets them: about what the call-cost scenario measured for
// heavyCost (20) light calls on a busy 2-vCPU AMD EPYC VM (a light call
// 460–600 µs of server CPU at 80 calls/s, a unit 98–108 ns: 80,000 to
// 116,000 units). A light call's CPU depends on the host far more than a
// unit's does, so on another host run call-cost before skewed-cost
// (-scenario call-cost,skewed-cost): the runs after it use its figure.
const defaultHeavyWork = 100_000

// callCostResult is what the call-cost scenario measured: the server CPU
// of a light call and of a heavy one, in the lab, at the call rate one pod
// gets in the 5-pod phase of the skewed-cost scenarios.
type callCostResult struct {
	Rate      float64 `json:"rate"`    // calls per second in each phase
	Conns     int     `json:"conns"`   // client connections
	PhaseS    float64 `json:"phase_s"` // length of each phase
	HeavyWork int     `json:"heavy_work"`
	// IdleCPUMsPerS is the server's CPU time, ms a second, with no calls;
	// the phases' CPU is counted above it.
	IdleCPUMsPerS float64 `json:"idle_cpu_ms_per_s"`
	// The light phase makes light calls only; the mix phase makes
	// heavyCallShare of its calls heavy, as skewed-cost does.
	LightCalls int     `json:"light_calls"`
	LightCPUMs float64 `json:"light_cpu_ms"`
	MixCalls   int     `json:"mix_calls"`
	MixHeavy   int     `json:"mix_heavy"`
	MixCPUMs   float64 `json:"mix_cpu_ms"`
	Failed     int     `json:"failed,omitempty"`
	// LightUs and HeavyUs are the server CPU of one call, µs; Ratio is
	// HeavyUs / LightUs (the target is heavyCost).
	LightUs float64 `json:"light_us"`
	HeavyUs float64 `json:"heavy_us"`
	Ratio   float64 `json:"ratio"`
	// UnitNs is the CPU of one work unit, ns; WorkForTarget the units that
	// would make a heavy call cost heavyCost light ones.
	UnitNs        float64 `json:"unit_ns"`
	WorkForTarget int     `json:"work_for_target"`
}

// runCallCost measures a light and a heavy call's server CPU in a lab of
// one pod behind the ClusterIP: an idle phase, then light calls only, then
// the skewed-cost mix, each reading the server's CPU time from
// /proc/<pid>/task/*/schedstat (nanoseconds; /proc/<pid>/stat's 10 ms
// steps are too coarse for a few hundred ms of CPU) once a second, over the
// seconds in which the clients neither connect nor hang up. The rate is a pod's
// share in the 5-pod phase of skewed-cost (its rate / 5, on p.Conns/5
// connections).
func runCallCost(ctx context.Context, p params, bins binaries, progress func(string)) (res *callCostResult, err error) {
	phase, idle := 20*time.Second, 10*time.Second
	if p.Short {
		phase, idle = 4*time.Second, 2*time.Second
	}
	sc, _ := findScenario("skewed-cost")
	res = &callCostResult{Rate: sc.rateOf(p) / 5, Conns: max(p.Conns/5, 1), PhaseS: phase.Seconds(), HeavyWork: p.HeavyWork}
	m, _ := findMode("none")
	var args []string
	lab, err := kubelab.New(ctx, kubelab.Config{
		TerminationGracePeriod: p.terminationGrace(),
		ServerCommand:          func(kubelab.Pod) kubelab.Command { return kubelab.Command{Path: bins.server, Args: args} },
	})
	if err != nil {
		return nil, err
	}
	lab.CloseOnSignal()
	defer func() {
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	args = serverArgs(scenario{}, m, p, "")
	if err := lab.ScaleTo(ctx, 1); err != nil {
		return nil, err
	}
	pid := lab.Pods()[0].PID
	cpuNow := func() (time.Duration, time.Time, error) {
		c, err := procCPUFine(pid)
		return c, time.Now(), err
	}
	// The phases sample the pod's CPU with cpuSampler, once a second.

	// Idle.
	c0, t0, err := cpuNow()
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c1, t1, err := cpuNow()
	if err != nil {
		return nil, err
	}
	idleRate := float64(c1-c0) / t1.Sub(t0).Seconds() // ns of CPU a second
	res.IdleCPUMsPerS = round3(idleRate / 1e6)

	// measure runs one phase and returns the server CPU above idle, in ns,
	// and the calls, over the phase's whole seconds but the first (the
	// clients connect) and the last (they hang up).
	measure := func(name string, heavy []float64) (cpu float64, calls, heavyCalls, failed int, err error) {
		lc := loadConfig{Target: "passthrough:///" + lab.ClusterIP(grpcPort), Conns: res.Conns, Rate: res.Rate,
			Duration: phase, CallTimeout: p.CallTimeout, Heavy: heavy}
		if heavy != nil {
			lc.HeavyWork = p.HeavyWork
		}
		phaseCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		load, err := startLabLoad(phaseCtx, lab.ClientCommand(phaseCtx, bins.load), lc, nil)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		n := int(math.Ceil(phase.Seconds()))
		sampler := sampleCPU(phaseCtx, (&emulatedLab{Lab: lab}).podList, load.origin, n)
		if err := <-load.done; err != nil {
			return 0, 0, 0, 0, fmt.Errorf("call-cost %s phase: %w", name, err)
		}
		perSecond := sampler.perSecond()
		steady := 0
		for _, l := range load.lines {
			failed += sumMap(l.Failed)
			if l.T < 1 || l.T >= n-1 || l.T >= len(perSecond) {
				continue
			}
			steady++
			calls += sumMap(l.Calls)
			heavyCalls += sumMap(l.Heavy)
			for _, ms := range perSecond[l.T] {
				cpu += ms * 1e6
			}
		}
		progress(fmt.Sprintf("call-cost %s: %d calls (%d heavy), %.1f ms of server CPU in %d s", name, calls, heavyCalls, cpu/1e6, steady))
		return cpu - idleRate*float64(steady), calls, heavyCalls, failed, nil
	}
	light, lightCalls, _, failed, err := measure("light", nil)
	if err != nil {
		return nil, err
	}
	res.Failed += failed
	fractions := make([]float64, res.Conns)
	for i := range fractions {
		fractions[i] = heavyCallShare
	}
	mix, mixCalls, mixHeavy, failed, err := measure("mix", fractions)
	if err != nil {
		return nil, err
	}
	res.Failed += failed
	res.LightCalls, res.LightCPUMs = lightCalls, round3(light/1e6)
	res.MixCalls, res.MixHeavy, res.MixCPUMs = mixCalls, mixHeavy, round3(mix/1e6)
	if lightCalls == 0 || mixHeavy == 0 {
		return res, fmt.Errorf("call-cost: %d light calls and %d heavy ones succeeded; want some of both", lightCalls, mixHeavy)
	}
	lightNs := light / float64(lightCalls)
	heavyNs := (mix - float64(mixCalls-mixHeavy)*lightNs) / float64(mixHeavy)
	res.LightUs, res.HeavyUs = round3(lightNs/1e3), round3(heavyNs/1e3)
	if lightNs > 0 {
		res.Ratio = round3(heavyNs / lightNs)
	}
	if unit := (heavyNs - lightNs) / float64(p.HeavyWork); unit > 0 {
		res.UnitNs = round3(unit)
		res.WorkForTarget = int(math.Round((heavyCost - 1) * lightNs / unit))
	}
	return res, nil
}

// writeCallCost prints the call-cost result.
func writeCallCost(w io.Writer, c *callCostResult) {
	fmt.Fprintf(w, "Call cost: one pod, %.0f calls/s on %d connections through the ClusterIP, %.0f s a phase; server CPU from /proc/<pid>/task/*/schedstat, above its idle %.2f ms/s.\n",
		c.Rate, c.Conns, c.PhaseS, c.IdleCPUMsPerS)
	fmt.Fprintf(w, "  light call %.1f µs (%d calls, %.0f ms); mix of %.0f %% heavy calls of %d work units: %d calls, %d heavy, %.0f ms\n",
		c.LightUs, c.LightCalls, c.LightCPUMs, 100*heavyCallShare, c.HeavyWork, c.MixCalls, c.MixHeavy, c.MixCPUMs)
	fmt.Fprintf(w, "  heavy call %.1f µs = %.1f × a light one (target %.0f); a work unit %.0f ns; %d units would make it %.0f ×",
		c.HeavyUs, c.Ratio, heavyCost, c.UnitNs, c.WorkForTarget, heavyCost)
	if c.Failed > 0 {
		fmt.Fprintf(w, "; %d calls FAILED", c.Failed)
	}
	fmt.Fprintln(w)
}
