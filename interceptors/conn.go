package interceptors

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/stats"

	"github.com/rotorkit/rotor/internal/reasons"
)

// ReasonUnknown labels the connections that ConnMetrics saw close through
// the stats handler: grpc-go does not tell a stats handler whether the
// server sent GOAWAY, so the reason is not known there.
const ReasonUnknown = "unknown"

// The reasons rotor's server uses (internal/reasons, the list package
// server exports as server.Reason values); their series exist from the
// start at zero so that rate() works before the first event. Other reasons
// get a series when first seen.
var closeReasons = append([]string{reasons.Client, ReasonUnknown}, reasons.Rotation...)

// ConnMetrics turns connection events into the rotor_connection* and
// rotor_rotations_total series. It is fed in one of two ways:
//
//   - as the Observer of rotor's Server (server.WithObserver): it then sees
//     every GOAWAY the kit sends and why, and labels each close with that
//     reason ("client" when the connection ended without one);
//   - as a grpc stats.Handler of a plain grpc.Server
//     (grpc.StatsHandler(m)): it then counts connections, their lifetimes
//     and calls, but grpc-go does not report GOAWAYs to stats handlers, so
//     closes are labelled "unknown" and rotor_rotations_total stays at zero.
//
// Use the observer with rotor's Server, the stats handler with plain grpc.
// Installing both does not count a connection twice: once the observer has
// been called, the stats handler leaves new connections to it. (rotor's
// Server reports a connection to its observer before grpc-go tags it.)
//
// All methods are safe for concurrent use and do not block.
type ConnMetrics struct {
	open      prometheus.Gauge
	opened    prometheus.Counter
	closed    *prometheus.CounterVec
	lifetime  prometheus.Histogram
	rpcs      prometheus.Histogram
	rotations *prometheus.CounterVec
	refused   *prometheus.CounterVec
	fsPeers   prometheus.Gauge
	fsOwn     prometheus.Gauge
	fsMean    prometheus.Gauge
	fsOwnLd   prometheus.Gauge
	fsMeanLd  prometheus.Gauge
	fsShed    prometheus.Counter

	observed atomic.Bool // the observer path is in use
}

// NewConnMetrics creates the connection metrics and registers them on r
// (prometheus.DefaultRegisterer when r is nil). If r holds ConnMetrics
// already, NewConnMetrics returns those, so that every server of a process
// reports into the same series.
func NewConnMetrics(r prometheus.Registerer) (*ConnMetrics, error) {
	if r == nil {
		r = prometheus.DefaultRegisterer
	}
	m := &ConnMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "rotor", Name: "connections_open",
			Help: "Client connections open now.",
		}),
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "rotor", Name: "connections_opened_total",
			Help: "Client connections accepted.",
		}),
		closed: reasonCounter("connections_closed_total",
			"Client connections closed, by the reason rotor sent them GOAWAY for ("+strings.Join(reasons.Rotation, ", ")+"), client when it sent none, unknown when seen by the stats handler."),
		lifetime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "rotor", Name: "connection_lifetime_seconds",
			Help:    "How long closed connections lived.",
			Buckets: []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}),
		rpcs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "rotor", Name: "connection_rpcs",
			Help: "Calls carried by closed connections.",
			// 0 shows connections that carried nothing (TCP probes, idle
			// clients); then decades.
			Buckets: []float64{0, 1, 10, 100, 1e3, 1e4, 1e5, 1e6},
		}),
		rotations: reasonCounter("rotations_total",
			"GOAWAYs sent by rotor, by reason ("+strings.Join(reasons.Rotation, ", ")+")."),
		refused: reasonCounter("connections_refused_total",
			"Client connections closed at accept, by reason ("+strings.Join(reasons.Refusal, ", ")+": Config.MaxConnections were open)."),
		fsPeers:  fairShareGauge("peers", "Peers that answered the last fair-share load exchange (0: fair share is idle, age rotation only)."),
		fsOwn:    fairShareGauge("own_connections", "This server's client connections at the last fair-share round."),
		fsMean:   fairShareGauge("fleet_mean_connections", "Mean client connections per pod of the fleet at the last fair-share round."),
		fsOwnLd:  fairShareGauge("own_load", "This server's load at the last fair-share round: seconds per second of the CPU its calls cost outside handlers plus their unary handlers' time."),
		fsMeanLd: fairShareGauge("fleet_mean_load", "Mean load per pod of the fleet at the last fair-share round, as this server estimates it: seconds per second of the CPU its calls cost outside handlers plus their unary handlers' time."),
		fsShed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "rotor", Subsystem: "fairshare", Name: "shed_connections_total",
			Help: "Connections this server shed to bring the fleet to its fair share.",
		}),
	}
	for _, reason := range reasons.Rotation {
		m.rotations.WithLabelValues(reason)
	}
	for _, reason := range closeReasons {
		m.closed.WithLabelValues(reason)
	}
	for _, reason := range reasons.Refusal {
		m.refused.WithLabelValues(reason)
	}
	m, err := register(r, m)
	if err != nil {
		return nil, fmt.Errorf("rotor: registering the connection metrics (rotor_*): %w", err)
	}
	return m, nil
}

// reasonCounter returns the counter rotor_<name>, by reason.
func reasonCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "rotor", Name: name, Help: help}, []string{"reason"})
}

// fairShareGauge returns the gauge rotor_fairshare_<name>.
func fairShareGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "rotor", Subsystem: "fairshare", Name: name, Help: help})
}

// Describe implements prometheus.Collector.
func (m *ConnMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.open.Describe(ch)
	m.opened.Describe(ch)
	m.closed.Describe(ch)
	m.lifetime.Describe(ch)
	m.rpcs.Describe(ch)
	m.rotations.Describe(ch)
	m.refused.Describe(ch)
	m.fsPeers.Describe(ch)
	m.fsOwn.Describe(ch)
	m.fsMean.Describe(ch)
	m.fsOwnLd.Describe(ch)
	m.fsMeanLd.Describe(ch)
	m.fsShed.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *ConnMetrics) Collect(ch chan<- prometheus.Metric) {
	m.open.Collect(ch)
	m.opened.Collect(ch)
	m.closed.Collect(ch)
	m.lifetime.Collect(ch)
	m.rpcs.Collect(ch)
	m.rotations.Collect(ch)
	m.refused.Collect(ch)
	m.fsPeers.Collect(ch)
	m.fsOwn.Collect(ch)
	m.fsMean.Collect(ch)
	m.fsOwnLd.Collect(ch)
	m.fsMeanLd.Collect(ch)
	m.fsShed.Collect(ch)
}

// FairShareRound records a round of rotor's fair-share balancing: the peers
// that answered, this server's client connections and load (seconds of
// CPU and handler time per second, see server.MeasureLoad), the fleet means
// of both as the server estimates them, and the connections shed. It is part of the observer rotor's Server
// calls when fair share is on.
func (m *ConnMetrics) FairShareRound(peers, ownConns int, meanConns, ownLoad, meanLoad float64, shed int) {
	m.fsPeers.Set(float64(peers))
	m.fsOwn.Set(float64(ownConns))
	m.fsMean.Set(meanConns)
	m.fsOwnLd.Set(ownLoad)
	m.fsMeanLd.Set(meanLoad)
	m.fsShed.Add(float64(shed))
}

// ConnOpened records an accepted connection. It is part of the observer
// that rotor's Server calls.
func (m *ConnMetrics) ConnOpened() {
	m.observe()
	m.connOpened()
}

// ConnDraining records a GOAWAY that rotor sent, for reason.
func (m *ConnMetrics) ConnDraining(reason string) {
	m.observe()
	m.rotations.WithLabelValues(label(reason)).Inc()
}

// ConnClosed records a closed connection: the reason it was drained for
// ("client" when it was not), how long it lived, and how many calls it
// carried.
func (m *ConnMetrics) ConnClosed(reason string, lifetime time.Duration, calls uint64) {
	m.observe()
	m.connClosed(reason, lifetime, calls)
}

// ConnRefused records a connection that rotor's Server closed as soon as
// it accepted it, for reason (such as "max_connections"). It is part of the
// observer rotor's Server calls (server.RefusalObserver).
func (m *ConnMetrics) ConnRefused(reason string) {
	m.observe()
	m.refused.WithLabelValues(label(reason)).Inc()
}

func (m *ConnMetrics) observe() {
	// Load first: a store on every event would bounce the cache line
	// between cores for nothing.
	if !m.observed.Load() {
		m.observed.Store(true)
	}
}

func (m *ConnMetrics) connOpened() {
	m.open.Inc()
	m.opened.Inc()
}

func (m *ConnMetrics) connClosed(reason string, lifetime time.Duration, calls uint64) {
	m.open.Dec()
	m.closed.WithLabelValues(label(reason)).Inc()
	m.lifetime.Observe(lifetime.Seconds())
	m.rpcs.Observe(float64(calls))
}

func label(reason string) string {
	if reason == "" {
		return ReasonUnknown
	}
	return reason
}

// connStatsKey keys a connection's connStats in the contexts grpc-go passes
// to m's stats methods; it includes m so that two ConnMetrics on one server
// keep apart.
type connStatsKey struct{ m *ConnMetrics }

type connStats struct {
	opened time.Time
	calls  atomic.Uint64
}

// TagConn implements stats.Handler: it starts tracking a connection, unless
// the observer path is in use.
func (m *ConnMetrics) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	if m.observed.Load() {
		return ctx
	}
	return context.WithValue(ctx, connStatsKey{m}, &connStats{opened: time.Now()})
}

// HandleConn implements stats.Handler: it records the start and end of the
// connections TagConn tracks.
func (m *ConnMetrics) HandleConn(ctx context.Context, s stats.ConnStats) {
	cs, ok := ctx.Value(connStatsKey{m}).(*connStats)
	if !ok {
		return
	}
	switch s.(type) {
	case *stats.ConnBegin:
		m.connOpened()
	case *stats.ConnEnd:
		m.connClosed(ReasonUnknown, time.Since(cs.opened), cs.calls.Load())
	}
}

// TagRPC implements stats.Handler: it counts the call on its connection.
func (m *ConnMetrics) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	if cs, ok := ctx.Value(connStatsKey{m}).(*connStats); ok {
		cs.calls.Add(1)
	}
	return ctx
}

// HandleRPC implements stats.Handler and does nothing.
func (m *ConnMetrics) HandleRPC(context.Context, stats.RPCStats) {}

var (
	_ stats.Handler        = (*ConnMetrics)(nil)
	_ prometheus.Collector = (*ConnMetrics)(nil)
)
