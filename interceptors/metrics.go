package interceptors

import (
	"errors"
	"fmt"
	"net/http"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a Prometheus registry holding the Go runtime and
// process collectors (go_*, process_*), the usual base for a service's
// /metrics. Pass it to WithRegisterer, NewConnMetrics and MetricsHandler.
// It exists so that a program need not use the global
// prometheus.DefaultRegisterer, which any imported package may write to.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// MetricsHandler serves the metrics of g in the Prometheus text format (or
// the protobuf format when the scraper asks for it), for an admin listener's
// /metrics. A nil g serves
// prometheus.DefaultGatherer. Errors of single collectors are reported in
// the response and the remaining metrics are still served.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func registerServerMetrics(r prometheus.Registerer, buckets []float64) (*grpcprom.ServerMetrics, error) {
	var hist []grpcprom.HistogramOption
	if buckets != nil {
		hist = append(hist, grpcprom.WithHistogramBuckets(buckets))
	}
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(hist...))
	m, err := register(r, m)
	if err != nil {
		return nil, fmt.Errorf("rotor: registering the gRPC call metrics (grpc_server_*): %w", err)
	}
	return m, nil
}

// register registers c on r, or returns the collector of the same type and
// the same series already registered there, so that building a chain twice
// on one registry works.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
