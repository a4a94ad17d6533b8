package interceptors_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/interceptors"
)

// observer is the method set rotor's server.Observer requires; ConnMetrics
// must keep it without importing server.
type observer interface {
	ConnOpened()
	ConnDraining(reason string)
	ConnClosed(reason string, lifetime time.Duration, calls uint64)
}

var _ observer = (*interceptors.ConnMetrics)(nil)

func TestConnMetricsObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Three connections: one rotated by age after 90 s and 7 calls, one
	// drained by an operator and still closing, one closed by its client
	// after 0.5 s and no call.
	m.ConnOpened()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnDraining("age")
	m.ConnClosed("age", 90*time.Second, 7)
	m.ConnDraining("admin")
	m.ConnClosed("client", 500*time.Millisecond, 0)
	m.ConnDraining("my-trigger")

	mfs := scrape(t, interceptors.MetricsHandler(reg))
	expectValues(t, mfs, []sample{
		{"rotor_connections_open", nil, 1},
		{"rotor_connections_opened_total", nil, 3},
		{"rotor_connections_closed_total", map[string]string{"reason": "age"}, 1},
		{"rotor_connections_closed_total", map[string]string{"reason": "client"}, 1},
		{"rotor_connections_closed_total", map[string]string{"reason": "admin"}, 0},
		{"rotor_rotations_total", map[string]string{"reason": "age"}, 1},
		{"rotor_rotations_total", map[string]string{"reason": "admin"}, 1},
		{"rotor_rotations_total", map[string]string{"reason": "my-trigger"}, 1},
		{"rotor_rotations_total", map[string]string{"reason": "peers"}, 0},
	})
	expectHistogram(t, mfs, "rotor_connection_lifetime_seconds", 2, 90.5)
	expectHistogram(t, mfs, "rotor_connection_rpcs", 2, 7)
	rpcs := find(t, mfs, "rotor_connection_rpcs", nil).GetHistogram()
	// The connection without calls lands in the le=0 bucket.
	if b := rpcs.GetBucket()[0]; b.GetUpperBound() != 0 || b.GetCumulativeCount() != 1 {
		t.Errorf("rpcs first bucket le=%v count %d, want le=0 count 1", b.GetUpperBound(), b.GetCumulativeCount())
	}
}

// A server that feeds ConnMetrics both as observer and as stats handler must
// count each connection once.
func TestConnMetricsObserverWinsOverStatsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ConnOpened() // the observer path is in use from here on
	ends := newConnEnds(m)
	cc := dial(t, serve(t, grpc.StatsHandler(ends)))
	mustHi(t, cc)
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	ends.wait(t)

	mfs := scrape(t, interceptors.MetricsHandler(reg))
	if got := value(t, mfs, "rotor_connections_opened_total", nil); got != 1 {
		t.Errorf("rotor_connections_opened_total = %v, want 1 (the observer's only)", got)
	}
	if got := value(t, mfs, "rotor_connections_open", nil); got != 1 {
		t.Errorf("rotor_connections_open = %v, want 1", got)
	}
	if got := value(t, mfs, "rotor_connections_closed_total", map[string]string{"reason": "unknown"}); got != 0 {
		t.Errorf("rotor_connections_closed_total{unknown} = %v, want 0", got)
	}
}

func TestRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatalf("second NewConnMetrics on one registry: %v", err)
	}
	if a != b {
		t.Error("second NewConnMetrics on one registry returned new metrics; want the registered ones")
	}
	for range 2 {
		if _, err := interceptors.NewChain(interceptors.WithRegisterer(reg)); err != nil {
			t.Fatalf("NewChain on a registry that has its metrics: %v", err)
		}
	}
	// A foreign collector under rotor's names is an error, not a silent
	// merge.
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "rotor_connections_open", Help: "not rotor's"}))
	if _, err := interceptors.NewConnMetrics(clash); err == nil {
		t.Error("NewConnMetrics over a foreign rotor_connections_open: no error")
	}
}

func TestConnMetricsFairShare(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.FairShareRound(4, 9, 4.2, 0.5, 0.25, 4)
	m.FairShareRound(4, 5, 4.2, 0.3, 0.25, 0)
	want := map[string]float64{
		"rotor_fairshare_peers":                  4,
		"rotor_fairshare_own_connections":        5,
		"rotor_fairshare_fleet_mean_connections": 4.2,
		"rotor_fairshare_own_load":               0.3,
		"rotor_fairshare_fleet_mean_load":        0.25,
		"rotor_fairshare_shed_connections_total": 4,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		v, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		m := mf.GetMetric()[0]
		got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if got != v {
			t.Errorf("%s = %v, want %v", mf.GetName(), got, v)
		}
		delete(want, mf.GetName())
	}
	for name := range want {
		t.Errorf("series %s missing", name)
	}
}
