package interceptors

import (
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

func TestChainPieces(t *testing.T) {
	for _, c := range []struct {
		name        string
		opts        []Option
		want        int
		wantMetrics bool
	}{
		{"default", nil, 3, true},
		{"WithServedBy", []Option{WithServedBy("pod-a")}, 4, true},
		{"WithServedBy empty", []Option{WithServedBy("")}, 3, true},
		{"WithoutRecovery", []Option{WithoutRecovery()}, 2, true},
		{"WithoutLogging", []Option{WithoutLogging()}, 2, true},
		{"WithoutMetrics", []Option{WithoutMetrics()}, 2, false},
		{"nothing", []Option{WithoutRecovery(), WithoutLogging(), WithoutMetrics()}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			ch, err := NewChain(append([]Option{WithRegisterer(reg)}, c.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			if len(ch.Unary()) != c.want || len(ch.Stream()) != c.want {
				t.Errorf("%d unary and %d stream interceptors, want %d", len(ch.Unary()), len(ch.Stream()), c.want)
			}
			// Registering the same metrics again fails exactly when the
			// chain registered them.
			err = reg.Register(grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()))
			if registered := err != nil; registered != c.wantMetrics {
				t.Errorf("call metrics registered = %v, want %v", registered, c.wantMetrics)
			}
		})
	}
}
