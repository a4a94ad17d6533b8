package interceptors_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rotorkit/rotor/interceptors"
	"github.com/rotorkit/rotor/internal/testkit"
	"github.com/rotorkit/rotor/server"
)

// refusedSignal passes every event to ConnMetrics and says when a refusal
// has been recorded.
type refusedSignal struct {
	*interceptors.ConnMetrics
	refused chan struct{}
}

func (r refusedSignal) ConnRefused(reason string) {
	r.ConnMetrics.ConnRefused(reason)
	r.refused <- struct{}{}
}

// A connection over Config.MaxConnections is refused at accept and counted
// in rotor_connections_refused_total{reason="max_connections"}, not in the
// opened connections.
func TestConnMetricsRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	cm, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	obs := refusedSignal{cm, make(chan struct{}, 1)}
	cfg := server.DefaultConfig()
	cfg.MaxConnections = 1
	srv, err := server.New(server.WithConfig(cfg), server.WithObserver(obs), server.WithLogger(discard))
	if err != nil {
		t.Fatal(err)
	}
	addr, served := serveRotor(t, srv)
	defer func() {
		srv.Close()
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	mustHi(t, dial(t, addr))

	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	testkit.Receive(t, obs.refused, 5*time.Second, "the connection over the cap to be refused")

	mfs := scrape(t, interceptors.MetricsHandler(reg))
	if got := value(t, mfs, "rotor_connections_refused_total", map[string]string{"reason": "max_connections"}); got != 1 {
		t.Errorf(`rotor_connections_refused_total{reason="max_connections"} = %v, want 1`, got)
	}
	if got := value(t, mfs, "rotor_connections_opened_total", nil); got != 1 {
		t.Errorf("rotor_connections_opened_total = %v, want 1: a refused connection is not opened", got)
	}
}

var _ server.RefusalObserver = (*interceptors.ConnMetrics)(nil)
