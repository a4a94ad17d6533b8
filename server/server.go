package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// ErrServerClosed is returned by Serve, ListenAndServe and Run once Shutdown
// or Close was called, like http.ErrServerClosed.
var ErrServerClosed = errors.New("rotor: server closed")

// Server is a gRPC server that owns its connections' lifecycle. It implements
// grpc.ServiceRegistrar: register services on it as on a *grpc.Server, then
// call Run (or Serve). It adds the gRPC health and reflection services, sends
// GOAWAY to connections by age and on demand (Rotate), tells long-lived
// streams when their connection drains (Draining), and shuts down in the
// order Kubernetes needs (Shutdown).
//
// One grpc.Server serves every connection; the kit writes its GOAWAY frames
// into the one connection it chooses (see the package documentation).
type Server struct {
	set      settings
	cfg      Config // set.cfg with defaults filled
	log      *slog.Logger
	obs      Observer
	gs       *grpc.Server
	health   *health.Server
	tls      *certReloader // WithTLSFiles
	refusals admission     // connections refused for MaxConnections
	tlsOn    bool          // connections go through kitCreds

	mu         sync.Mutex
	serving    bool
	conns      map[*conn]struct{}
	draining   bool          // Shutdown reached its drain: new connections are lame ducks
	drainEnd   time.Time     // when the drain ends at the latest
	shutdown   bool          // Shutdown or Close began
	changed    chan struct{} // poked when a connection opens or closes
	lastChange int64         // unix nanoseconds of the last accept or close

	byAddr sync.Map // the remote net.Addr grpc-go's peer carries → *conn

	userTimeoutFailed atomic.Bool // logged once

	hooks   []func(context.Context)
	peers   *peerWatcher
	fair    *fairShare
	calls   atomic.Uint64 // client calls, for the fair-share rate and ORCA
	busy    atomic.Int64  // nanoseconds client calls' handlers ran, for ORCA
	orca    *orcaReporter
	port    atomic.Int32 // the first listener's port
	opaqueW atomic.Bool  // warned about a connection the kit cannot write into

	lameDucks atomic.Int64 // connections accepted during the drain

	localMu  sync.Mutex
	localIPs map[string]struct{} // addresses clients reached this server on

	bgOnce     sync.Once
	bgCancel   context.CancelFunc
	bgStopped  bool           // Shutdown or Close ran: background work must not start
	bg         sync.WaitGroup // the background work, once started
	bgDoneOnce sync.Once      // starts the wait that closes bgDone
	bgDone     chan struct{}  // made by stopBackground; closed once bg's work has returned

	shutdownOnce sync.Once
	shutdownErr  error
	shutdownDone chan struct{}
	stopOnce     sync.Once
}

// New validates the options and returns a Server that is ready to have
// services registered. The gRPC health service (reporting SERVING for "")
// and, unless WithoutReflection is given, the reflection service are
// registered already. Invalid options are reported as *ConfigError values,
// all at once.
func New(opts ...Option) (*Server, error) {
	set := defaultSettings()
	for _, o := range opts {
		o(&set)
	}
	if err := set.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		set:          set,
		cfg:          set.cfg.withDefaults(),
		obs:          set.observer,
		health:       health.NewServer(),
		conns:        make(map[*conn]struct{}),
		changed:      make(chan struct{}, 1),
		localIPs:     make(map[string]struct{}),
		shutdownDone: make(chan struct{}),
	}
	log := set.logger
	if log == nil {
		log = slog.Default()
	}
	s.log = log.With("component", "rotor/server")
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	gopts := s.cfg.grpcOptions(false)
	creds, err := s.setupTLS()
	if err != nil {
		return nil, err
	}
	if creds != nil {
		s.tlsOn = true
		gopts = append(gopts, grpc.Creds(kitCreds{TransportCredentials: creds, s: s}))
	}
	gopts = append(gopts,
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{s.unary}, set.unary...)...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{s.stream}, set.stream...)...),
	)
	if set.orca != nil {
		s.orca = newORCAReporter(s, *set.orca)
		gopts = append(gopts, orca.CallMetricsServerOption(s.orca.rec),
			grpc.ChainUnaryInterceptor(touchORCA), grpc.ChainStreamInterceptor(touchORCAStream))
	}
	s.gs = grpc.NewServer(append(gopts, set.grpcOpts...)...)
	if s.orca != nil {
		if err := orca.Register(s.gs, orca.ServiceOptions{ServerMetricsProvider: s.orca.rec}); err != nil {
			return nil, fmt.Errorf("rotor: registering the ORCA service: %w", err)
		}
	}
	if set.peerTarget != "" {
		s.peers, _ = newPeerWatcher(set.peerTarget, set.peerInterval) // checked by validate
	}
	healthpb.RegisterHealthServer(s.gs, s.health)
	if set.reflection {
		reflection.Register(s.gs)
	}
	if set.fairShare != nil {
		s.fair = newFairShare(s, *set.fairShare)
		fairsharev1.RegisterLoadServiceServer(s.gs, loadServer{f: s.fair})
		if s.peers != nil {
			s.peers.perPeer = peerPollPerPeer
		}
		if age := s.cfg.MaxConnectionAge; age != Off && age < fairShareMinAge {
			s.log.Warn("fair share with a short MaxConnectionAge: every age GOAWAY is a new random pick by kube-proxy that fair share then evens out again; set MaxConnectionAge to minutes",
				"max_connection_age", age, "suggested", 5*time.Minute)
		}
	}
	return s, nil
}

// RegisterService registers a service, as grpc.Server.RegisterService does.
// It implements grpc.ServiceRegistrar and must be called before Serve; later
// it panics, naming the service.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if serving {
		panic(fmt.Sprintf("rotor: RegisterService(%q) called after Serve", desc.ServiceName))
	}
	s.gs.RegisterService(desc, impl)
}

// GetServiceInfo describes the registered services, like
// grpc.Server.GetServiceInfo.
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.gs.GetServiceInfo() }

// SetServingStatus sets the gRPC health status of service ("" is the whole
// server, SERVING from New on): serving true reports SERVING, false
// NOT_SERVING. Once Shutdown or Close has begun every status is NOT_SERVING
// and stays so; SetServingStatus then does nothing.
func (s *Server) SetServingStatus(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(service, st)
}

// Config returns the configuration in force, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// RegisterOnShutdown registers f to run, in its own goroutine, when
// Shutdown begins, with Shutdown's context; Shutdown returns only after f
// has. Use it to shut a companion, such as a REST gateway in the same
// process, down in step: it gets the same signal at the same moment, and,
// following the same delay rule, keeps serving for its own ShutdownDelay.
// f must not call Shutdown, which would wait for f.
func (s *Server) RegisterOnShutdown(f func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, f)
}

// unary is the kit's outermost interceptor: it ties the call to its
// connection, for Draining, the call counts and fair share.
func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c := s.connOf(ctx)
	if c == nil {
		return h(ctx, req)
	}
	if info.FullMethod == loadMethod {
		// Only a connection that carries nothing but load queries is a
		// peer's; a client asking for load keeps being a client.
		if c.calls.Load() == 0 {
			c.internal.Store(true)
		}
		return h(ctx, req)
	}
	// One clock read per call; the count counts as handler time.
	now := time.Now()
	c.countCall(now)
	resp, err := h(context.WithValue(ctx, connKey{}, c), req)
	c.addBusy(time.Since(now))
	return resp, err
}

func (s *Server) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	c := s.connOf(ss.Context())
	if c == nil {
		return h(srv, ss)
	}
	if c.countCall(time.Now()) {
		c.spareStream()
	}
	return h(srv, &connStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), connKey{}, c)})
}

// addBusy adds the time a unary handler ran to the connection's and the
// server's busy time (fair share's load, ORCA's application utilization).
// Streams are not counted: a stream's life is no measure of what it costs.
func (c *conn) addBusy(d time.Duration) {
	c.busy.Add(int64(d))
	c.handled.Add(1)
	c.srv.busy.Add(int64(d))
}

// countCall counts a client's call, begun at now, and reports whether it
// is the connection's first; a connection that also carries client calls
// is not a peer's, and must not escape rotation.
func (c *conn) countCall(now time.Time) (first bool) {
	if c.internal.Load() {
		c.internal.Store(false)
	}
	c.srv.calls.Add(1)
	first = c.calls.Add(1) == 1
	if first {
		c.setFirstCall(now)
	}
	return first
}

// connOf finds the connection a call arrived on: grpc-go's peer carries the
// remote address the accepted connection reported, the very value the kit
// recorded at accept.
func (s *Server) connOf(ctx context.Context) *conn {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return nil
	}
	if v, ok := s.byAddr.Load(p.Addr); ok {
		return v.(*conn)
	}
	return nil
}

type connStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *connStream) Context() context.Context { return s.ctx }

// kitCreds are the server's transport credentials with the kit's
// frameWriter around the connection they return, so that GOAWAY frames go
// into the HTTP/2 stream, above TLS.
type kitCreds struct {
	credentials.TransportCredentials
	s *Server
}

func (k kitCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, info, err := k.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	h, ok := raw.(*handshakeConn)
	if !ok {
		return nc, info, nil
	}
	fw := newFrameWriter(nc, h.c)
	k.s.attach(h.c, fw)
	return fw, info, nil
}

func (k kitCreds) Clone() credentials.TransportCredentials {
	return kitCreds{TransportCredentials: k.TransportCredentials.Clone(), s: k.s}
}

// warnOpaque logs, once, that a connection's bytes are not HTTP/2 frames
// where the kit reads them.
func (s *Server) warnOpaque(c *conn) {
	if s.opaqueW.CompareAndSwap(false, true) {
		s.log.Error("a connection is not plain HTTP/2 where the kit writes GOAWAY frames; it will never be rotated. Give TLS with WithTLSFiles or WithTLSConfig, not grpc.Creds in WithGRPCOptions",
			"remote", c.raw.RemoteAddr().String())
	}
}

// startBackground starts, once, the work that runs while the server serves:
// the peer watcher, fair-share balancing and ORCA's sampling. Shutdown and
// Close stop it (stopBackground).
func (s *Server) startBackground() {
	s.bgOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.mu.Lock()
		s.bgCancel = cancel
		stopped := s.bgStopped
		if !stopped {
			// Under s.mu, which stopBackground takes too before it waits
			// on s.bg: that wait comes after this Add, or no Add comes.
			s.bg.Add(1)
		}
		s.mu.Unlock()
		if stopped {
			cancel()
			return
		}
		go func() {
			defer s.bg.Done()
			s.startPeers(ctx)
			if s.fair != nil {
				s.bg.Go(func() { s.fair.run(ctx) })
			}
			if s.orca != nil {
				s.bg.Go(func() { s.orca.run(ctx) })
			}
		}()
	})
}

// stopBackground stops the background work: no fair-share round, ORCA
// sample or peer poll begins after it, a fair-share round still asking its
// peers uses no answer (its queries are cancelled: it reports nothing to
// the Observer and sheds nothing), and the spreads of sheds and peer
// rotations stop (the drain, or Close, ends every connection anyway).
// s.bgDone closes once it has returned: promptly, unless an Observer it
// calls blocks.
func (s *Server) stopBackground() {
	s.mu.Lock()
	s.bgStopped = true
	cancel := s.bgCancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.bgDoneOnce.Do(func() {
		s.bgDone = make(chan struct{})
		go func() {
			// After bgStopped is set: startBackground's Add, if any,
			// came before (see there), and any later Add comes from
			// work already counted.
			s.bg.Wait()
			close(s.bgDone)
		}()
	})
}

// listenPort is the port of the first listener Serve was given, 0 before.
func (s *Server) listenPort() int { return int(s.port.Load()) }
