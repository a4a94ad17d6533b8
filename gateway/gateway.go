package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
)

// Gateway is a grpc-gateway REST front for a gRPC server. It implements
// http.Handler; serve it with its own http.Server (Serve, ListenAndServe,
// Run), which applies the Config's timeouts and limits, or mount Handler in
// yours.
type Gateway struct {
	set        settings
	log        *slog.Logger
	mux        *runtime.ServeMux
	hs         *http.Server
	healthConn *grpc.ClientConn // for readiness; see dialHealth

	stopConns context.CancelFunc // ends the ctx given to the register functions
	closeOnce sync.Once
	stopping  atomic.Bool // /readyz answers 503
}

// New validates cfg, registers every register function on a new
// runtime.ServeMux, and dials the gRPC endpoint. grpc.NewClient connects
// lazily, so New succeeds while the gRPC server is still starting; calls made
// before it is up fail with 503.
//
// ctx is handed to the register functions, whose connections close when it
// ends; Shutdown and Close end it too. Use a ctx that outlives serving, such
// as context.Background().
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	connCtx, stopConns := context.WithCancel(ctx)
	g := &Gateway{set: set, log: set.log, stopConns: stopConns}

	opts := []runtime.ServeMuxOption{
		runtime.WithIncomingHeaderMatcher(g.matchHeader),
		runtime.WithMetadata(requestIDMetadata),
		runtime.WithErrorHandler(g.errorHandler),
		runtime.WithRoutingErrorHandler(g.routingError),
	}
	g.mux = runtime.NewServeMux(append(opts, set.muxOpts...)...)
	for i, fn := range set.fns {
		if err := fn(connCtx, g.mux, set.endpoint, set.dialOpts); err != nil {
			stopConns()
			return nil, fmt.Errorf("rotor/gateway: register function %d of %d for %q: %w", i+1, len(set.fns), set.endpoint, err)
		}
	}
	if err := g.dialHealth(); err != nil {
		stopConns()
		return nil, fmt.Errorf("rotor/gateway: dialing %q for readiness: %w", set.endpoint, err)
	}
	g.hs = &http.Server{
		Addr:              set.httpAddr,
		Handler:           g,
		ReadHeaderTimeout: set.readHeader,
		ReadTimeout:       set.read,
		// WriteTimeout stays 0: it bounds a whole response and would cut
		// server-streaming calls. The Gateway bounds each write instead
		// (boundWrites).
		IdleTimeout:    set.idle,
		MaxHeaderBytes: set.maxHeader,
		ConnContext:    g.ConnContext,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// Handler returns the Gateway as an http.Handler, for an http.Server you own.
// Set its ConnContext to the Gateway's ConnContext for connection rotation,
// and give it ReadHeaderTimeout, ReadTimeout, IdleTimeout and MaxHeaderBytes
// of your own: of the limits, only MaxBodyBytes and the per-write
// WriteTimeout travel with the handler.
func (g *Gateway) Handler() http.Handler { return g }

// Mux returns the grpc-gateway ServeMux the REST routes are registered on,
// to add routes of your own with HandlePath.
func (g *Gateway) Mux() *runtime.ServeMux { return g.mux }

// ServeHTTP serves the probe and OpenAPI paths itself and passes every other
// request, with its request id, body limits and write deadlines, to the
// grpc-gateway ServeMux.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rotate(w, r)
	st := &reqState{id: requestID(r)}
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
		if g.set.openAPI != nil {
			g.serveOpenAPI(w, r)
			return
		}
	}
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
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(g.set.openAPI))
}

// Serve serves REST on lis until Shutdown or Close, and then returns
// http.ErrServerClosed, as http.Server.Serve does.
func (g *Gateway) Serve(lis net.Listener) error {
	g.log.Info("rotor/gateway: serving REST", "addr", lis.Addr().String(), "grpc_endpoint", g.set.endpoint,
		"connection_max_age", g.set.maxAge)
	return g.hs.Serve(lis)
}

// ListenAndServe listens on HTTPAddr and calls Serve.
func (g *Gateway) ListenAndServe() error {
	lis, err := net.Listen("tcp", g.set.httpAddr)
	if err != nil {
		return fmt.Errorf("rotor/gateway: %w", err)
	}
	return g.Serve(lis)
}

// Shutdown stops the Gateway gracefully: /readyz turns 503, listeners close,
// and open requests may finish until ctx ends; those still open then are cut
// and Shutdown returns ctx.Err(). The connections to the gRPC server close
// last. To stop in step with a rotor gRPC server in the same process, let
// its drain call Shutdown:
//
//	srv.RegisterOnDrain(func(ctx context.Context) { _ = gw.Shutdown(ctx) })
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopping.Store(true)
	err := g.hs.Shutdown(ctx)
	if err != nil {
		_ = g.hs.Close()
	}
	g.closeConns()
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

// Run builds a Gateway from cfg and serves it on HTTPAddr until ctx ends.
// Then /readyz turns 503 and, after ShutdownDelay, Run shuts the Gateway down,
// bounded by ShutdownTimeout. It returns nil after a clean shutdown.
//
// Run is the one call for a gateway that runs as its own Deployment, with a
// ctx that ends on SIGTERM (signal.NotifyContext). Beside a rotor gRPC server
// in the same process, prefer New and srv.RegisterOnDrain, so that the
// gateway stops in the server's drain step.
func Run(ctx context.Context, cfg Config) error {
	g, err := New(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", g.set.httpAddr)
	if err != nil {
		g.Close()
		return fmt.Errorf("rotor/gateway: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	select {
	case err := <-served:
		g.Close()
		return err
	case <-ctx.Done():
	}

	g.stopping.Store(true)
	g.log.Info("rotor/gateway: shutting down: /readyz is 503", "delay", g.set.delay, "timeout", g.set.shutdownMax)
	delay := time.NewTimer(g.set.delay)
	defer delay.Stop()
	select {
	case <-delay.C:
	case err := <-served:
		g.Close()
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.set.shutdownMax)
	defer cancel()
	err = g.Shutdown(sctx)
	if serr := <-served; err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	if err == nil {
		g.log.Info("rotor/gateway: shutdown complete")
	}
	return err
}

// RegisterGRPCGateway is the classic article's one call,
//
//	go gateway.RegisterGRPCGateway(&gateway.Config{Fn: pb.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051"})
//
// done properly: it runs Run with a context that ends on SIGTERM or SIGINT,
// so the gateway shuts down gracefully beside a rotor server that does the
// same (server.Run), each after its own ShutdownDelay. It blocks; start it
// in a goroutine, as the article does.
func RegisterGRPCGateway(cfg *Config) error {
	if cfg == nil {
		return &ConfigError{Field: "cfg", Value: "nil", Want: "a *Config"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return Run(ctx, *cfg)
}
