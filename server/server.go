package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// ErrServerClosed is returned by Serve and Run once Shutdown or Close was
// called, like http.ErrServerClosed.
var ErrServerClosed = errors.New("rotor/server: server closed")

// Server is a gRPC server that owns its connections' lifecycle. It implements
// grpc.ServiceRegistrar: register services on it as on a *grpc.Server, then
// call Run (or Serve). It adds the gRPC health and reflection services, rotates
// connections by age and on demand (Rotate), tells long-lived streams when
// their connection drains (Draining), and shuts down in the order Kubernetes
// needs (Shutdown).
//
// Every accepted connection is served by its own *grpc.Server built with the
// same options and services; see the package documentation for why.
type Server struct {
	set    settings
	log    *slog.Logger
	obs    Observer
	health *health.Server
	opts   []grpc.ServerOption // kit options, without the per-connection interceptors
	tls    *certReloader       // WithTLSFiles
	admit  admission           // MaxConnections

	mu        sync.Mutex
	services  []service
	serving   bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool // no new connections are served
	connsWG   sync.WaitGroup

	onDrain []func(context.Context)
	peers   *peerWatcher
	fair    *fairShare
	calls   atomic.Uint64 // client calls, for the fair-share rate
	port    atomic.Int32  // the first listener's port

	localMu  sync.Mutex
	localIPs map[string]struct{} // addresses clients reached this server on

	bgOnce    sync.Once
	bgCancel  context.CancelFunc
	bgStopped bool // Shutdown or Close ran: background work must not start

	shutdownOnce sync.Once
	shutdownErr  error
	shutdownDone chan struct{}
}

type service struct {
	desc *grpc.ServiceDesc
	impl any
}

// New validates the options and returns a Server that is ready to have
// services registered. The gRPC health service (reporting SERVING for "")
// and, unless WithoutReflection is given, the reflection service are
// registered already.
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
		log:          set.logger,
		obs:          set.observer,
		health:       health.NewServer(),
		listeners:    make(map[net.Listener]struct{}),
		conns:        make(map[*conn]struct{}),
		localIPs:     make(map[string]struct{}),
		shutdownDone: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	s.opts = set.cfg.grpcOptions(false)
	if err := s.setupTLS(); err != nil {
		return nil, err
	}
	s.opts = append(s.opts, set.grpcOpts...)
	if set.peerTarget != "" {
		s.peers, _ = newPeerWatcher(set.peerTarget, set.peerInterval) // checked by validate
	}
	healthpb.RegisterHealthServer(s, s.health)
	if set.fairShare != nil {
		s.fair = newFairShare(s, *set.fairShare)
		fairsharev1.RegisterLoadServiceServer(s, loadServer{f: s.fair})
	}
	return s, nil
}

// RegisterService records a service; every connection's server gets it. It
// implements grpc.ServiceRegistrar and, like grpc.Server, must be called
// before Serve.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving {
		panic(fmt.Sprintf("rotor/server: RegisterService(%q) called after Serve", desc.ServiceName))
	}
	if impl != nil {
		// Fail now, not at the first connection, on an impl of the wrong type.
		probe := grpc.NewServer()
		probe.RegisterService(desc, impl)
		probe.Stop()
	}
	s.services = append(s.services, service{desc, impl})
}

// GetServiceInfo describes the registered services, like
// grpc.Server.GetServiceInfo.
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo {
	gs := grpc.NewServer()
	defer gs.Stop()
	s.registerAll(gs)
	return gs.GetServiceInfo()
}

// Health returns the server's gRPC health service, to set the status of
// single services. Shutdown sets every status to NOT_SERVING.
func (s *Server) Health() *health.Server { return s.health }

// Config returns the validated configuration in force.
func (s *Server) Config() Config { return s.set.cfg }

func (s *Server) registerAll(gs *grpc.Server) {
	s.mu.Lock()
	svcs := s.services
	s.mu.Unlock()
	for _, sv := range svcs {
		gs.RegisterService(sv.desc, sv.impl)
	}
	if s.set.reflection {
		reflection.Register(gs)
	}
}

// RegisterOnDrain registers f to run, in its own goroutine, when Shutdown
// reaches its drain step (after ShutdownDelay), with a context that ends at
// the drain deadline. Use it to shut down companions such as an HTTP gateway
// in step with the gRPC server.
func (s *Server) RegisterOnDrain(f func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onDrain = append(s.onDrain, f)
}

// startBackground starts, once, the work that runs while the server serves:
// the peer watcher and fair-share balancing. Shutdown and Close stop it.
func (s *Server) startBackground() {
	s.bgOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.mu.Lock()
		s.bgCancel = cancel
		stopped := s.bgStopped
		s.mu.Unlock()
		if stopped {
			// Shutdown or Close came first: start nothing.
			cancel()
			return
		}
		s.startPeers(ctx)
		if s.fair != nil {
			go s.fair.run(ctx)
		}
	})
}

func (s *Server) stopBackground() {
	s.mu.Lock()
	s.bgStopped = true
	cancel := s.bgCancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// listenPort is the port of the first listener Serve was given, 0 before.
func (s *Server) listenPort() int { return int(s.port.Load()) }
