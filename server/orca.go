package server

import (
	"context"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/orca"

	"github.com/rotorkit/rotor/internal/cputime"
	"github.com/rotorkit/rotor/internal/lifecycle"
)

// ORCA configures the backend metrics reports of WithORCA. Its zero value
// is the defaults.
type ORCA struct {
	// Interval is how often the server samples its load for the reports.
	// Default 1 s. Allowed: 100 ms to 1 min.
	Interval time.Duration
}

// WithORCA makes the server report its load to clients as ORCA backend
// metrics (gRFC A51): in the trailer of every call (what a
// weighted_round_robin client, WeightedRoundRobin, reads by default) and on
// the out-of-band OpenRcaService (for clients that ask for a stream; grpc-go
// reports there every 30 s at most often). The metrics, sampled every
// Interval:
//
//   - cpu_utilization: the process's CPU time (user and system) per second
//     of wall time, over GOMAXPROCS (container-aware since Go 1.25): 1 means
//     every core the process may use is busy. Taken from getrusage on Unix
//     and GetProcessTimes on Windows, which moves in clock ticks (about
//     15.6 ms), so that an Interval under a second reads coarse there;
//     elsewhere it is left out of the reports (ORCA refuses a zero, so the
//     kit leaves one out);
//   - application_utilization: the time this server's handlers ran per
//     second, over GOMAXPROCS, the same measure as fair share's load; it
//     follows what the calls of this server cost, also when other servers or
//     work share the process, and weighted_round_robin prefers it;
//   - qps: client calls per second.
//
// Each report costs a small trailer per call.
func WithORCA(o ORCA) Option {
	return func(s *settings) {
		if o.Interval == 0 {
			o.Interval = time.Second
		}
		s.orca = &o
	}
}

func (o ORCA) validate(p *problems) {
	if o.Interval < 100*time.Millisecond || o.Interval > time.Minute {
		p.add("server.ORCA.Interval", o.Interval, "between 100ms and 1m, or 0 for the default 1s")
	}
}

// orcaReporter samples the server's load into an ORCA recorder.
type orcaReporter struct {
	s   *Server
	cfg ORCA
	rec orca.ServerMetricsRecorder
}

func newORCAReporter(s *Server, cfg ORCA) *orcaReporter {
	return &orcaReporter{s: s, cfg: cfg, rec: orca.NewServerMetricsRecorder()}
}

// run samples every Interval until ctx ends.
func (r *orcaReporter) run(ctx context.Context) {
	lastCPU, lastBusy, lastCalls, last := cputime.Process(), r.s.busy.Load(), r.s.calls.Load(), time.Now()
	lifecycle.Every(ctx, r.cfg.Interval, func() {
		now := time.Now()
		cpu, busy, calls := cputime.Process(), r.s.busy.Load(), r.s.calls.Load()
		wall := now.Sub(last).Seconds()
		procs := float64(runtime.GOMAXPROCS(0))
		if wall > 0 {
			r.record(
				(cpu-lastCPU).Seconds()/wall/procs,
				time.Duration(busy-lastBusy).Seconds()/wall/procs,
				float64(calls-lastCalls)/wall,
			)
		}
		lastCPU, lastBusy, lastCalls, last = cpu, busy, calls, now
	})
}

// record sets the metrics; ORCA refuses zero for utilizations and QPS, which
// an idle server has: those are deleted instead.
func (r *orcaReporter) record(cpu, app, qps float64) {
	set := func(v float64, put func(float64), del func()) {
		if v > 0 {
			put(v)
		} else {
			del()
		}
	}
	set(cpu, r.rec.SetCPUUtilization, r.rec.DeleteCPUUtilization)
	set(app, r.rec.SetApplicationUtilization, r.rec.DeleteApplicationUtilization)
	set(qps, r.rec.SetQPS, r.rec.DeleteQPS)
}

// touchORCA asks for the call's ORCA recorder: grpc-go's interceptor
// (orca.CallMetricsServerOption) attaches the server's metrics to a call's
// trailer only when the handler did, and the kit reports them for every
// call.
func touchORCA(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	orca.CallMetricsRecorderFromContext(ctx)
	return h(ctx, req)
}

func touchORCAStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	orca.CallMetricsRecorderFromContext(ss.Context())
	return h(srv, ss)
}
