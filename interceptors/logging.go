package interceptors

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
)

const healthPrefix = "/grpc.health.v1.Health/"

func loggingInterceptors(o *options) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	log := o.logger
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	opts := append([]logging.Option{
		// The middleware also logs "started call" by default: one line per
		// call is enough, and the finish line has everything.
		logging.WithLogOnEvents(logging.FinishCall),
		// A number, not the middleware's default string, so that log
		// queries can compare and sum it.
		logging.WithDurationField(func(d time.Duration) logging.Fields {
			return logging.Fields{"grpc.time_ms", float64(d.Microseconds()) / 1000}
		}),
	}, o.loggingOpts...)
	u := logging.UnaryServerInterceptor(logger, opts...)
	s := logging.StreamServerInterceptor(logger, opts...)
	if o.logHealthChecks {
		return u, s
	}
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !strings.HasPrefix(c.FullMethod(), healthPrefix)
	})
	return selector.UnaryServerInterceptor(u, notHealth), selector.StreamServerInterceptor(s, notHealth)
}
