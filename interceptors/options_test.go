package interceptors

import (
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

func TestChainPieces(t *testing.T) {
	for _, c := range []struct {
		name         string
		opts         []Option
		want         int
		wantMetrics  bool
		wantHandlers int
	}{
		{"default", nil, 3, true, 0},
		{"WithServedBy", []Option{WithServedBy("pod-a")}, 4, true, 0},
		{"WithServedBy empty", []Option{WithServedBy("")}, 3, true, 0},
		{"WithoutRecovery", []Option{WithoutRecovery()}, 2, true, 0},
		{"WithoutLogging", []Option{WithoutLogging()}, 2, true, 0},
		{"WithoutMetrics", []Option{WithoutMetrics()}, 2, false, 0},
		{"nothing", []Option{WithoutRecovery(), WithoutLogging(), WithoutMetrics()}, 0, false, 0},
		{"WithTracing", []Option{WithTracing(nil)}, 4, true, 1},
		{"WithTracing alone", []Option{WithoutRecovery(), WithoutLogging(), WithoutMetrics(), WithTracing(nil)}, 1, false, 1},
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
			if n := len(ch.StatsHandlers()); n != c.wantHandlers {
				t.Errorf("%d stats handlers, want %d", n, c.wantHandlers)
			}
			if n := len(ch.ServerOptions()); n != 2+c.wantHandlers {
				t.Errorf("%d server options, want %d: the interceptors and the stats handlers", n, 2+c.wantHandlers)
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
