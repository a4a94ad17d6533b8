package interceptors

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
)

// Keys of the call line. All but grpc.time_us are go-grpc-middleware's, and
// its logging interceptor is given grpc.time_us too (WithLoggingOptions), so
// that log queries work the same with either.
const (
	keyService    = "grpc.service"
	keyMethod     = "grpc.method"
	keyMethodType = "grpc.method_type"
	keyCode       = "grpc.code"
	keyError      = "grpc.error"
	keyTimeUS     = "grpc.time_us"
	keyPeer       = "peer.address"
	msgFinished   = "finished call"
)

func loggingInterceptors(o *options) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	if o.middlewareLogging {
		return middlewareLogging(o)
	}
	l := &callLogger{log: o.logger, health: o.logHealthChecks}
	return interceptors.UnaryServerInterceptor(l), interceptors.StreamServerInterceptor(l)
}

// callLogger writes the chain's call line: one slog record per finished call
// with service, method, method type, code, error, duration in microseconds
// and the client's address, at the level go-grpc-middleware gives the code
// (logging.DefaultServerCodeToLevel: Info for OK and the client's own
// errors, Warn or Error for the server's).
//
// It is a reporter for go-grpc-middleware's interceptor framework (the one
// its logging and Prometheus interceptors run on) rather than that logging
// interceptor itself, because of cost: the middleware assembles its fields
// with about ten times the allocations of this reporter
// (BenchmarkChainAlone; README.md has the figures). It keeps the middleware's
// logging.Fields contract: a handler or an inner interceptor can add fields
// to its call's line with logging.AddFields, and fields an outer interceptor
// injected with logging.InjectFields are on the line too.
type callLogger struct {
	log    *slog.Logger
	health bool // log health checks as well

	// methods holds, per method, the logger's handler with the method's
	// three attributes already added: handlers such as slog's JSON and text
	// ones format such attributes once, not on every call. The number of
	// methods a server has bounds it; maxMethods guards against a server
	// whose unknown-service handler takes any name.
	methods  sync.Map // methodKey → slog.Handler
	nMethods atomic.Int32
}

type methodKey struct{ service, method string }

const maxMethods = 1024

// handler returns the handler for c's calls.
func (l *callLogger) handler(c interceptors.CallMeta) slog.Handler {
	key := methodKey{c.Service, c.Method}
	if h, ok := l.methods.Load(key); ok {
		return h.(slog.Handler)
	}
	h := l.log.Handler().WithAttrs([]slog.Attr{
		slog.String(keyService, c.Service),
		slog.String(keyMethod, c.Method),
		slog.String(keyMethodType, string(c.Typ)),
	})
	if l.nMethods.Load() < maxMethods {
		if _, loaded := l.methods.LoadOrStore(key, h); !loaded {
			l.nMethods.Add(1)
		}
	}
	return h
}

func (l *callLogger) ServerReporter(ctx context.Context, c interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	if kitService(c.Service) || !l.health && c.Service == healthService {
		return interceptors.NoopReporter{}, ctx
	}
	// A fields value of this call's own, for logging.AddFields.
	ctx = logging.InjectFields(ctx, nil)
	return &callLine{l: l, ctx: ctx, meta: c}, ctx
}

type callLine struct {
	l    *callLogger
	ctx  context.Context
	meta interceptors.CallMeta
}

func (*callLine) PostMsgSend(any, error, time.Duration)    {}
func (*callLine) PostMsgReceive(any, error, time.Duration) {}

func (r *callLine) PostCall(err error, d time.Duration) {
	// The code the client gets and the metrics count: grpc-go turns a
	// handler's context error into Canceled or DeadlineExceeded, and
	// anything else that is not a status (io.EOF included) into Unknown.
	code := grpcprom.FromError(err).Code()
	level := slog.Level(logging.DefaultServerCodeToLevel(code))
	if !r.l.log.Enabled(r.ctx, level) {
		return
	}
	// A record without a source position (pc 0): it would point here, not
	// at the handler, and finding it costs a stack walk a call.
	rec := slog.NewRecord(time.Now(), level, msgFinished, 0)
	rec.AddAttrs(
		slog.String(keyCode, code.String()),
		// Whole microseconds, not float milliseconds: slog's JSON handler
		// formats a float through encoding/json, whose deep frames made
		// grpc-go's per-call goroutine grow (copy) its stack on every call
		// in the lab's profile.
		slog.Int64(keyTimeUS, d.Microseconds()),
	)
	if p, ok := peer.FromContext(r.ctx); ok && p.Addr != nil {
		rec.AddAttrs(slog.String(keyPeer, addrString(p.Addr)))
	}
	if err != nil {
		rec.AddAttrs(slog.String(keyError, err.Error()))
	}
	for f := logging.ExtractFields(r.ctx).Iterator(); f.Next(); {
		k, v := f.At()
		if !builtinKey(k) { // the line's own facts win, as in the middleware
			rec.AddAttrs(slog.Any(k, v))
		}
	}
	// Service, method and method type come with the method's handler.
	_ = r.l.handler(r.meta).Handle(r.ctx, rec)
}

// middlewareLogging is go-grpc-middleware's own logging interceptor, for
// WithLoggingOptions: payload logging, start-of-call lines and the rest of
// its options, at its cost.
func middlewareLogging(o *options) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	log := o.logger
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	opts := append([]logging.Option{
		// The middleware also logs "started call" by default: one line per
		// call is enough, and the finish line has everything.
		logging.WithLogOnEvents(logging.FinishCall),
		// The chain's own duration field: an integer, not the middleware's
		// float32 milliseconds, so that lines of both loggers match.
		logging.WithDurationField(func(d time.Duration) logging.Fields {
			return logging.Fields{keyTimeUS, d.Microseconds()}
		}),
		// The code the client gets, as the call line and the metrics have
		// it (the middleware's own default logs a context error as Unknown).
		logging.WithCodes(func(err error) codes.Code { return grpcprom.FromError(err).Code() }),
	}, o.loggingOpts...)
	u := logging.UnaryServerInterceptor(logger, opts...)
	s := logging.StreamServerInterceptor(logger, opts...)
	logged := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !kitService(c.Service) && (o.logHealthChecks || c.Service != healthService)
	})
	return selector.UnaryServerInterceptor(u, logged), selector.StreamServerInterceptor(s, logged)
}

func builtinKey(k string) bool {
	switch k {
	case keyService, keyMethod, keyMethodType, keyCode, keyError, keyTimeUS, keyPeer:
		return true
	}
	return false
}

// addrString is a.String(), in one allocation instead of three for the
// usual TCP address; anything unusual takes a.String() itself.
func addrString(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t != nil && t.Zone == "" && t.Port >= 0 && t.Port <= 0xffff {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return netip.AddrPortFrom(ip.Unmap(), uint16(t.Port)).String()
		}
	}
	return a.String()
}
