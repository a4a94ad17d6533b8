package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/rotorkit/rotor/example/internal/tally"
)

// The targets (#16).
const (
	targetMemRatio    = 1.25 // rotor/plain memory per connection, at most
	targetAcceptRatio = 0.9  // rotor/plain mass-reconnect rate, at least
	targetRotationCPU = 0.01 // age rotation at 5 min, of one core, at most
	targetAge         = 5 * time.Minute
)

// perConn is what one connection adds to a server: (s − base) / n.
type perConn struct {
	rss, heap, stack, goroutines float64
}

func perConnOf(s, base memSample, n int) perConn {
	d := func(a, b float64) float64 { return (a - b) / float64(n) }
	return perConn{
		rss:        d(float64(s.RSS), float64(base.RSS)),
		heap:       d(float64(s.HeapInuse), float64(base.HeapInuse)),
		stack:      d(float64(s.StackInuse), float64(base.StackInuse)),
		goroutines: d(float64(s.Goroutines), float64(base.Goroutines)),
	}
}

// rotationCPU is the CPU, of one core, that the rotations of an age run
// took: its CPU less what the same server spends at age Off on its
// connections (idle) and on as many calls as the age run made (the age-Off
// run's CPU per call). When both runs made every call, that is simply the
// difference of the two; when the host could not keep up with the calls,
// a run is not credited with the calls it did not make.
func rotationCPU(a, idle, off cpuWindow) (core, se float64) {
	perCall := 0.0
	if off.calls > 0 {
		perCall = (off.core - idle.core) / off.callRate()
	}
	core = a.core - idle.core - perCall*a.callRate()
	return core, math.Sqrt(a.se*a.se + off.se*off.se + idle.se*idle.se)
}

// rotationEstimate is item 4's verdict: the CPU cost of one rotation,
// measured in rotor's age run with the most rotations (the one least
// blurred by noise), at the rate of n connections rotated once per
// targetAge.
type rotationEstimate struct {
	from       time.Duration // the age run it comes from
	perRot     time.Duration // server CPU per rotation
	core       float64       // at targetAge: perRot · n / targetAge, of one core
	directCore float64       // the targetAge run's own rotation CPU; NaN if not run
	directSE   float64
}

// estimateRotation returns item 4's figures from rotor's age runs and its
// idle and age-Off windows; ok is false without a rotor age run that
// rotated.
func estimateRotation(idle, off cpuWindow, ages []ageResult, n int) (e rotationEstimate, ok bool) {
	e.directCore, e.directSE = math.NaN(), math.NaN()
	best := -1
	for i, a := range ages {
		if a.mode != "rotor" {
			continue
		}
		if a.age == targetAge {
			e.directCore, e.directSE = rotationCPU(a.cpu, idle, off)
		}
		if a.cpu.rotations > 0 && (best < 0 || a.cpu.rotations > ages[best].cpu.rotations) {
			best = i
		}
	}
	if best < 0 {
		return e, false
	}
	a := ages[best]
	core, _ := rotationCPU(a.cpu, idle, off)
	e.from = a.age
	e.perRot = time.Duration(core * float64(a.cpu.window) / float64(a.cpu.rotations))
	e.core = e.perRot.Seconds() * float64(n) / targetAge.Seconds()
	return e, true
}

// write prints the report: the table of items 1 to 5 against the targets,
// then the figures they come from.
func (r *report) write(w io.Writer) {
	plain, rotor := r.servers[0], r.servers[1]
	n := r.cfg.N
	fmt.Fprintf(w, "connscale: %d connections from %d client processes (%d loopback source addresses); %s %s/%s, %d CPUs; the run took %v\n",
		n, r.clients, r.cfg.Sources, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), r.took.Round(time.Second))
	fmt.Fprintf(w, "plain: grpc.NewServer(server.DefaultConfig() with MaxConnectionAge Off, .ServerOptions()...); Hello\n")
	fmt.Fprintf(w, "rotor: server.New(WithMaxConnectionAge(Off), WithObserver(a counter)); health, reflection, Hello\n")
	fmt.Fprintf(w, "per connection: (server process at N − before any client) / N, after runtime.GC and debug.FreeOSMemory")
	if r.cfg.Readings > 1 {
		fmt.Fprintf(w, ";\n  idle and 1 call/s: the median of %d readings 1 s apart, field by field (RSS and heap: their range in brackets)", r.cfg.Readings)
	}
	fmt.Fprintf(w, "\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "item\tmeasure\tplain\trotor\trotor/plain\ttarget\t")
	memRows := func(item, phase string, p, q perConn, rangeP, rangeQ func(func(perConn) float64) string, cpuP, cpuQ cpuWindow) {
		rss := func(c perConn) float64 { return c.rss }
		heap := func(c perConn) float64 { return c.heap }
		fmt.Fprintf(tw, "%s\t%s: RSS per conn\t%s%s\t%s%s\t%s\t≤%.2f×\t%s\n", item, phase, kib(p.rss), rangeP(rss), kib(q.rss), rangeQ(rss), ratio(q.rss, p.rss), targetMemRatio, verdict(q.rss <= targetMemRatio*p.rss))
		fmt.Fprintf(tw, "%s\t%s: Go heap in use per conn\t%s%s\t%s%s\t%s\t≤%.2f×\t%s\n", item, phase, kib(p.heap), rangeP(heap), kib(q.heap), rangeQ(heap), ratio(q.heap, p.heap), targetMemRatio, verdict(q.heap <= targetMemRatio*p.heap))
		fmt.Fprintf(tw, "%s\t%s: goroutine stacks per conn\t%s\t%s\t%s\t\t\n", item, phase, kib(p.stack), kib(q.stack), ratio(q.stack, p.stack))
		same := math.Abs(q.goroutines-p.goroutines) < 0.005
		gr := fmt.Sprintf("%+.2f", q.goroutines-p.goroutines)
		if same {
			gr = "same"
		}
		fmt.Fprintf(tw, "%s\t%s: goroutines per conn\t%.2f\t%.2f\t%s\tsame\t%s\n", item, phase, p.goroutines, q.goroutines, gr, verdict(same))
		calls := ""
		if cpuP.calls > 0 {
			calls = fmt.Sprintf(", %.0f and %.0f calls/s made", cpuP.callRate(), cpuQ.callRate())
		}
		fmt.Fprintf(tw, "%s\t%s: server CPU (%v%s)\t%s\t%s\t%s\t\t\n", item, phase, roundDur(cpuP.window), calls, pct(cpuP.core, cpuP.se), pct(cpuQ.core, cpuQ.se), ratio(cpuQ.core, cpuP.core))
	}
	memRows("1", "idle", perConnOf(plain.idle, plain.base, n), perConnOf(rotor.idle, rotor.base, n),
		spread(plain.idleReadings, plain.base, n), spread(rotor.idleReadings, rotor.base, n), plain.idleCPU, rotor.idleCPU)
	memRows("2", "1 call/s", perConnOf(plain.active, plain.base, n), perConnOf(rotor.active, rotor.base, n),
		spread(plain.activeReadings, plain.base, n), spread(rotor.activeReadings, rotor.base, n), plain.cpu, rotor.cpu)
	rp, rq := median(plain.bursts, burstStats.rate90), median(rotor.bursts, burstStats.rate90)
	fmt.Fprintf(tw, "3\tmass reconnect: conns/s, first 90 %% Ready (median of %d)\t%.0f\t%.0f\t%s\t≥%.2f×\t%s\n",
		len(plain.bursts), rp, rq, ratio(rq, rp), targetAcceptRatio, verdict(rq >= targetAcceptRatio*rp))
	rp, rq = median(plain.bursts, burstStats.rate), median(rotor.bursts, burstStats.rate)
	fmt.Fprintf(tw, "3\tmass reconnect: conns/s, all Ready (median of %d)\t%.0f\t%.0f\t%s\t\t\n", len(plain.bursts), rp, rq, ratio(rq, rp))
	tw.Flush()

	fmt.Fprintf(w, "\n4 age rotation: %d connections calling once a second, opened evenly over one age; CPU over %v from 1.1 age on (± standard error over six parts);\n", n, r.cfg.CPUWindow)
	fmt.Fprintf(w, "  rotations are the clients' dials; rotation CPU = server CPU − idle CPU − (age-Off CPU per call × calls made), the same server's age-Off figures;\n")
	fmt.Fprintf(w, "  other CPU is the rest of the host's busy time (the parent, and anything else running): how disturbed a window was\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  server\tage\tcalls/s\trotations/s\tserver CPU\tclients' CPU\tother CPU\trotation CPU\tper rotation\tfailed calls\t")
	for _, s := range r.servers {
		fmt.Fprintf(tw, "  %s\tOff, idle\t%.0f\t%.1f\t%s\t%s\t%s\t\t\t\t\n", s.mode, s.idleCPU.callRate(), float64(s.idleCPU.rotations)/s.idleCPU.window.Seconds(),
			pct(s.idleCPU.core, s.idleCPU.se), pct1(s.idleCPU.clientCore), pct1(s.idleCPU.otherCore))
		fmt.Fprintf(tw, "  %s\tOff\t%.0f\t%.1f\t%s\t%s\t%s\t\t\t%d of %d\t\n", s.mode, s.cpu.callRate(), float64(s.cpu.rotations)/s.cpu.window.Seconds(),
			pct(s.cpu.core, s.cpu.se), pct1(s.cpu.clientCore), pct1(s.cpu.otherCore), s.calls.Failed, s.calls.OK+s.calls.Failed)
	}
	for _, a := range r.ages {
		srv := plain
		name := "plain (grpc-go's own)"
		if a.mode == "rotor" {
			srv, name = rotor, "rotor"
		}
		d, se := rotationCPU(a.cpu, srv.idleCPU, srv.cpu)
		per := "—"
		if a.cpu.rotations > 0 {
			per = fmt.Sprint((time.Duration(d*float64(a.cpu.window)) / time.Duration(a.cpu.rotations)).Round(time.Microsecond / 10))
		}
		fmt.Fprintf(tw, "  %s\t%v\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d of %d\t\n", name, a.age, a.cpu.callRate(), float64(a.cpu.rotations)/a.cpu.window.Seconds(),
			pct(a.cpu.core, a.cpu.se), pct1(a.cpu.clientCore), pct1(a.cpu.otherCore), pct(d, se), per, a.calls.Failed, a.calls.OK+a.calls.Failed)
	}
	tw.Flush()
	if e, ok := estimateRotation(rotor.idleCPU, rotor.cpu, r.ages, n); ok {
		fmt.Fprintf(w, "  rotation at age %v: %v per rotation (age %v run) × %d conns / %v = %.2f %% of a core  (target ≤%.0f %%: %s)\n",
			targetAge, e.perRot.Round(time.Microsecond/10), e.from, n, targetAge, 100*e.core, 100*targetRotationCPU, verdict(e.core <= targetRotationCPU))
		if !math.IsNaN(e.directCore) {
			fmt.Fprintf(w, "  measured directly at age %v: rotation CPU %s of a core\n", targetAge, pct(e.directCore, e.directSE))
		}
	} else {
		fmt.Fprintf(w, "  no age run rotated a connection: nothing to estimate\n")
	}

	fmt.Fprintf(w, "\n5 mass rotate: POST /rotate?spread=%v on the age-Off rotor while every connection calls once a second\n", r.cfg.Spread)
	if rs := rotor.rotate; rs != nil {
		fmt.Fprintf(w, "  rotated %d; failed calls %d of %d (target 0: %s)%s\n", rs.rotated, rs.calls.Failed, rs.calls.OK+rs.calls.Failed,
			verdict(rs.calls.Failed == 0), codes(rs.calls))
		fmt.Fprintf(w, "  every GOAWAY sent after %v; every rotated connection replaced, none draining, after %v (%d client connections then)\n",
			rs.sent.Round(time.Millisecond), rs.reconnected.Round(time.Millisecond), rs.clients)
	}

	fmt.Fprintf(w, "\nfigures")
	if r.cfg.Readings > 1 {
		fmt.Fprintf(w, " (before: one reading; idle and 1 call/s: the median of %d, field by field, and the fewest connections)", r.cfg.Readings)
	}
	fmt.Fprintf(w, "\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  server\tphase\tconns\tRSS\theap in use\tstacks\tgoroutines\t")
	for _, s := range r.servers {
		for _, p := range []struct {
			name string
			m    memSample
		}{{"before", s.base}, {"idle", s.idle}, {"1 call/s", s.active}} {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%d\t\n", s.mode, p.name, p.m.Conns, mib(p.m.RSS), mib(int64(p.m.HeapInuse)), mib(int64(p.m.StackInuse)), p.m.Goroutines)
		}
	}
	tw.Flush()
	for _, s := range r.servers {
		fmt.Fprintf(w, "  %s: calls at 1 call/s: %d, failed %d%s\n", s.mode, s.calls.OK+s.calls.Failed, s.calls.Failed, codes(s.calls))
		for i, b := range s.bursts {
			fmt.Fprintf(w, "  %s: mass reconnect %d: %d of %d Ready; half after %v, 90 %% after %v, 99 %% after %v, all after %v: %.0f conns/s to 90 %%, %.0f to all\n",
				s.mode, i+1, b.ready, n, b.p50.Round(time.Millisecond), b.p90.Round(time.Millisecond), b.p99.Round(time.Millisecond), b.last.Round(time.Millisecond), b.rate90(), b.rate())
		}
	}
}

// spread returns a function that gives the range, per connection, of one
// field of readings (" (min–max)", in KiB), or "" for fewer than two.
func spread(readings []memSample, base memSample, n int) func(func(perConn) float64) string {
	return func(field func(perConn) float64) string {
		if len(readings) < 2 {
			return ""
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, m := range readings {
			v := field(perConnOf(m, base, n))
			lo, hi = min(lo, v), max(hi, v)
		}
		return fmt.Sprintf(" (%.1f–%.1f)", lo/1024, hi/1024)
	}
}

func median(bs []burstStats, rate func(burstStats) float64) float64 {
	if len(bs) == 0 {
		return 0
	}
	rates := make([]float64, len(bs))
	for i, b := range bs {
		rates[i] = rate(b)
	}
	slices.Sort(rates)
	if len(rates)%2 == 1 {
		return rates[len(rates)/2]
	}
	return (rates[len(rates)/2-1] + rates[len(rates)/2]) / 2
}

// roundDur rounds d for showing: to the second, or below 10 s to a tenth.
func roundDur(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func ratio(a, b float64) string {
	if b <= 0 || a < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// pct1 formats a fraction of one core.
func pct1(core float64) string { return fmt.Sprintf("%.1f %%", 100*core) }

// pct formats a fraction of one core, with its standard error.
func pct(core, se float64) string {
	return fmt.Sprintf("%.2f ± %.2f %%", 100*core, 100*se)
}

// codes is c's failed calls by gRPC code, with a first error, as a
// parenthesis to append to a count; "" when none failed.
func codes(c callCounts) string {
	if c.Failed == 0 {
		return ""
	}
	s := " (" + tally.Counts(c.Codes) + ")"
	if len(c.Samples) > 0 {
		s += "; e.g. " + c.Samples[0]
	}
	return s
}
