package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/internal/conf"
	"github.com/rotorkit/rotor/internal/lifecycle"
)

// Gateway is a grpc-gateway REST front for a gRPC server. It implements
// http.Handler; serve it with its own http.Server (Serve, ListenAndServe,
// Run), which applies the Config's timeouts and limits, or mount Handler in
// yours. Its lifecycle has the gRPC server's verbs and delay rule: Run
// serves until its context ends, then Shutdown turns /readyz 503, keeps
// serving for ShutdownDelay, and drains for up to DrainTimeout.
type Gateway struct {
	set        resolved
	log        *slog.Logger
	mux        *runtime.ServeMux
	hs         *http.Server
	healthConn *grpc.ClientConn // for readiness; see dialHealth
	rest       []*restConn      // one per register function's connection
	api        http.Handler     // serveAPI, traced when Config.TracerProvider is set

	stopConns context.CancelFunc // ends the ctx given to the register functions
	closeOnce sync.Once
	stopping  atomic.Bool // /readyz answers 503
}

// New validates cfg, registers every register function on a new
// runtime.ServeMux, and dials the gRPC endpoint. grpc.NewClient connects
// lazily, so New succeeds while the gRPC server is still starting; calls made
// before it is up fail with 503. Invalid settings are reported as
// *server.ConfigError values, all at once.
//
// ctx's values reach the register functions (grpc-gateway's
// Register…FromEndpoint), but its end does not close their connections:
// Shutdown and Close do, once the drain is over. So the context that Run
// or the gRPC server's Run serves until (server.SignalContext's) may be
// given, and REST calls made during ShutdownDelay still reach the gRPC
// server. (Handed on as it was, a signal context closed them at SIGTERM,
// and every REST call of the delay failed with HTTP 499.)
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	set, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	g := &Gateway{set: set, log: set.Logger.With("component", "rotor/gateway"), stopConns: stopConns}

	opts := []runtime.ServeMuxOption{
		runtime.WithIncomingHeaderMatcher(g.matchHeader),
		runtime.WithMetadata(requestIDMetadata),
		runtime.WithErrorHandler(g.errorHandler),
		runtime.WithRoutingErrorHandler(g.routingError),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, strictJSON()),
	}
	g.api = http.HandlerFunc(g.serveAPI)
	if set.TracerProvider != nil {
		g.api = traceHTTP(g.api, set.TracerProvider)
		opts = append(opts, runtime.WithMetadata(nameSpan))
	}
	g.mux = runtime.NewServeMux(append(opts, set.MuxOptions...)...)
	for i, fn := range set.fns {
		rc := &restConn{}
		g.rest = append(g.rest, rc)
		dialOpts := append(slices.Clip(set.dialOpts), gatewayDialOptions()...)
		dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(rc.unary), grpc.WithChainStreamInterceptor(rc.stream))
		if set.TracerProvider != nil {
			dialOpts = append(dialOpts, traceGRPC(set.TracerProvider))
		}
		if err := fn(connCtx, g.mux, set.endpoint, dialOpts); err != nil {
			stopConns()
			return nil, fmt.Errorf("rotor: gateway register function %d of %d for %q: %w", i+1, len(set.fns), set.endpoint, err)
		}
	}
	if err := g.dialHealth(); err != nil {
		stopConns()
		return nil, fmt.Errorf("rotor: gateway dialing %q for readiness: %w", set.endpoint, err)
	}
	g.hs = &http.Server{
		Addr:              set.HTTPAddr,
		Handler:           g,
		ReadHeaderTimeout: set.ReadHeaderTimeout,
		ReadTimeout:       on(set.ReadTimeout),
		// WriteTimeout stays 0: it bounds a whole response and would cut
		// server-streaming calls. The Gateway bounds each write instead
		// (boundWrites).
		IdleTimeout:    on(set.IdleTimeout),
		MaxHeaderBytes: set.MaxHeaderBytes,
		ConnContext:    g.ConnContext,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// Handler returns the Gateway as an http.Handler, for an http.Server you own.
// Set its ConnContext to the Gateway's ConnContext for connection rotation,
// and give it ReadHeaderTimeout, ReadTimeout, IdleTimeout and MaxHeaderBytes
// of your own: of the limits, only MaxBodyBytes and the per-write
// WriteTimeout travel with the handler. Call Close (or Shutdown) when done:
// it closes the Gateway's gRPC connections, which New's ctx does not.
func (g *Gateway) Handler() http.Handler { return g }

// Mux returns the grpc-gateway ServeMux the REST routes are registered on,
// to add routes of your own with HandlePath.
func (g *Gateway) Mux() *runtime.ServeMux { return g.mux }

// ServeHTTP serves the probe and OpenAPI paths itself and passes every other
// request, with its request id, body limits and write deadlines, to the
// grpc-gateway ServeMux, in a span of its own when Config.TracerProvider is
// set.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rotate(w, r)
	st := &reqState{id: requestID(r), conn: w}
	w.Header().Set(RequestIDHeader, st.id)
	r = r.WithContext(context.WithValue(r.Context(), reqKey{}, st))

	switch r.URL.Path {
	case HealthzPath:
		g.serveHealthz(w, r)
		return
	case ReadyzPath:
		g.serveReadyz(w, r)
		return
	case OpenAPIPath:
		if g.set.OpenAPI != nil {
			g.serveOpenAPI(w, r)
			return
		}
	}
	g.api.ServeHTTP(w, r)
}

// serveAPI serves a request for the REST routes.
func (g *Gateway) serveAPI(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r.Context())
	if !g.set.forwardAuth {
		stripAuthorization(r)
	}
	if !g.limitBody(w, r, st) {
		return
	}
	bw := g.boundWrites(w, r)
	g.mux.ServeHTTP(bw, r)
	if dw, ok := bw.(*deadlineWriter); ok {
		dw.finish()
	}
}

func (g *Gateway) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(g, w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(g.set.OpenAPI))
}

// Serve serves REST on lis until Shutdown or Close, and then returns
// http.ErrServerClosed, as http.Server.Serve does.
func (g *Gateway) Serve(lis net.Listener) error {
	g.log.Info("serving REST", "addr", lis.Addr().String(), "grpc_endpoint", g.set.endpoint,
		"max_connection_age", conf.Format(g.set.MaxConnectionAge))
	return g.hs.Serve(lis)
}

// ListenAndServe listens on HTTPAddr and calls Serve.
func (g *Gateway) ListenAndServe() error {
	lis, err := net.Listen("tcp", g.set.HTTPAddr)
	if err != nil {
		return fmt.Errorf("rotor: gateway: %w", err)
	}
	return g.Serve(lis)
}

// Run listens on HTTPAddr and serves until ctx ends, then runs Shutdown,
// bounded by ShutdownDelay + DrainTimeout and a second. It returns nil after
// a clean shutdown, the listener's error if serving fails first. It is the
// one call for a gateway that runs as its own Deployment, with a ctx from
// server.SignalContext. Beside a rotor gRPC server in the same process, let
// the server start the shutdown instead:
//
//	srv.RegisterOnShutdown(func(ctx context.Context) { _ = gw.Shutdown(ctx) })
func (g *Gateway) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", g.set.HTTPAddr)
	if err != nil {
		g.Close()
		return fmt.Errorf("rotor: gateway: %w", err)
	}
	return lifecycle.Run(ctx, g, func() error { return g.Serve(lis) }, http.ErrServerClosed, on(g.set.ShutdownDelay), on(g.set.DrainTimeout))
}

// Shutdown stops the Gateway the way the gRPC server stops: /readyz turns
// 503 at once; the Gateway keeps serving for ShutdownDelay, while the pod
// leaves the endpoints; then its listeners close and open requests may
// finish until DrainTimeout or ctx ends, whichever is first. Requests still
// open then are cut, and Shutdown returns ctx.Err() (or
// context.DeadlineExceeded at DrainTimeout). The connections to the gRPC
// server close last.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopping.Store(true)
	g.log.Info("shutting down: /readyz is 503", "delay", on(g.set.ShutdownDelay), "drain_timeout", on(g.set.DrainTimeout))
	t := time.NewTimer(on(g.set.ShutdownDelay))
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	dctx, cancel := context.WithTimeout(ctx, on(g.set.DrainTimeout))
	defer cancel()
	err := g.hs.Shutdown(dctx)
	if err != nil {
		_ = g.hs.Close()
	}
	g.closeConns()
	if err == nil {
		g.log.Info("shutdown complete")
	}
	return err
}

// Close stops the Gateway at once: listeners and connections close, open
// requests fail. Prefer Shutdown.
func (g *Gateway) Close() error {
	g.stopping.Store(true)
	err := g.hs.Close()
	g.closeConns()
	return err
}

func (g *Gateway) closeConns() {
	g.closeOnce.Do(func() {
		g.stopConns()
		_ = g.healthConn.Close()
	})
}
