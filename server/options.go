package server

import (
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ServerOptions validates c and returns the grpc.ServerOptions that apply
// it, for a grpc.NewServer of your own:
//
//	opts, err := server.Config{}.ServerOptions()
//	if err != nil { … }
//	s := grpc.NewServer(opts...)
//
// Connections then rotate by age through grpc-go's own MaxConnectionAge and
// MaxConnectionAgeGrace. What needs the kit's Server (New) is not there:
// on-demand rotation, Draining, the lame-duck drain, MaxConnections. The
// shutdown fields are checked but unused: pair s.GracefulStop with s.Stop
// after ShutdownDelay + DrainTimeout yourself. For TLS, add
// grpc.Creds(ServerTLS(…)).
func (c Config) ServerOptions() ([]grpc.ServerOption, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.withDefaults().grpcOptions(true), nil
}

// grpcOptions translates c, defaults filled. With age false, grpc-go's age
// rotation stays off, because the kit's Server rotates connections itself.
func (c Config) grpcOptions(age bool) []grpc.ServerOption {
	never := func(d time.Duration) time.Duration {
		if d == Off {
			return forever
		}
		return d
	}
	kp := keepalive.ServerParameters{
		MaxConnectionIdle: never(c.MaxConnectionIdle),
		Time:              never(c.KeepaliveTime),
		Timeout:           c.KeepaliveTimeout,
		MaxConnectionAge:  forever,
	}
	if age && c.MaxConnectionAge != Off {
		kp.MaxConnectionAge = c.MaxConnectionAge
		// grpc-go reads a zero grace as "infinite"; Off means none.
		kp.MaxConnectionAgeGrace = max(on(c.MaxConnectionAgeGrace), time.Nanosecond)
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveParams(kp),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             c.MinPingInterval,
			PermitWithoutStream: !c.ForbidPingsWithoutStream,
		}),
		grpc.MaxRecvMsgSize(c.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(c.MaxSendMsgSize),
		grpc.ConnectionTimeout(c.HandshakeTimeout),
	}
	if c.MaxConcurrentStreams != Off {
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(c.MaxConcurrentStreams)))
	}
	return opts
}

// forever is grpc-go's "infinity" for keepalive durations, what Off turns
// into there.
const forever = time.Duration(1<<63 - 1)

// An Option configures a Server built by New.
type Option func(*settings)

type settings struct {
	cfg        Config
	addr       string
	logger     *slog.Logger
	grpcOpts   []grpc.ServerOption
	unary      []grpc.UnaryServerInterceptor
	stream     []grpc.StreamServerInterceptor
	reflection bool
	observer   Observer
	tls        tlsOptions

	adminAddr     string
	adminPublic   bool
	adminToken    string
	adminHandlers []adminHandler
	peerTarget    string
	peerInterval  time.Duration
	fairShare     *FairShare
	orca          *ORCA
}

type adminHandler struct {
	pattern string
	handler http.Handler
}

func defaultSettings() settings {
	return settings{
		addr:       ":50051",
		logger:     slog.Default(),
		reflection: true,
	}
}

// WithConfig replaces the whole Config (the zero Config is the kit's
// defaults). Options given after it change single fields of it.
func WithConfig(cfg Config) Option { return func(s *settings) { s.cfg = cfg } }

// WithMaxConnectionAge sets Config.MaxConnectionAge.
func WithMaxConnectionAge(d time.Duration) Option {
	return func(s *settings) { s.cfg.MaxConnectionAge = d }
}

// WithMaxConnectionAgeGrace sets Config.MaxConnectionAgeGrace.
func WithMaxConnectionAgeGrace(d time.Duration) Option {
	return func(s *settings) { s.cfg.MaxConnectionAgeGrace = d }
}

// WithShutdownDelay sets Config.ShutdownDelay.
func WithShutdownDelay(d time.Duration) Option {
	return func(s *settings) { s.cfg.ShutdownDelay = d }
}

// WithDrainTimeout sets Config.DrainTimeout.
func WithDrainTimeout(d time.Duration) Option {
	return func(s *settings) { s.cfg.DrainTimeout = d }
}

// WithAddr sets the address Run and ListenAndServe listen on (default
// ":50051").
func WithAddr(addr string) Option { return func(s *settings) { s.addr = addr } }

// WithLogger sets the logger for lifecycle and rotation events (default
// slog.Default()). Its records carry component=rotor/server.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithGRPCOptions adds grpc.ServerOptions (stats handlers, …) after the
// kit's own. Keepalive and message-size settings belong in the Config.
// Transport credentials belong in WithTLSFiles or WithTLSConfig: the kit
// writes its GOAWAY frames into the HTTP/2 stream under the credentials,
// and cannot find that stream under credentials given as grpc.Creds here
// (such connections are never rotated, and the kit logs an error).
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return func(s *settings) { s.grpcOpts = append(s.grpcOpts, opts...) }
}

// WithUnaryInterceptors appends unary interceptors, run in the order given.
func WithUnaryInterceptors(i ...grpc.UnaryServerInterceptor) Option {
	return func(s *settings) { s.unary = append(s.unary, i...) }
}

// WithStreamInterceptors appends stream interceptors, run in the order given.
func WithStreamInterceptors(i ...grpc.StreamServerInterceptor) Option {
	return func(s *settings) { s.stream = append(s.stream, i...) }
}

// WithoutReflection stops New from registering the gRPC reflection service,
// which is on by default so that grpcurl works against any rotor server.
func WithoutReflection() Option { return func(s *settings) { s.reflection = false } }

// WithObserver receives connection and rotation events, for metrics. The
// interceptors package provides one backed by Prometheus (ConnMetrics).
func WithObserver(o Observer) Option { return func(s *settings) { s.observer = o } }

// WithAdminAddr makes Run serve the admin endpoints (AdminHandler: POST
// /rotate, GET /stats, /metrics when added) on addr, e.g. "127.0.0.1:9090".
// Empty (the default) serves none. The address must be loopback unless
// WithPublicAdmin is also given: anyone who reaches it can rotate every
// connection of the pod.
func WithAdminAddr(addr string) Option { return func(s *settings) { s.adminAddr = addr } }

// WithPublicAdmin allows a non-loopback admin address (needed for a
// Prometheus scrape from another pod). Run logs a warning; set
// WithAdminToken too.
func WithPublicAdmin() Option { return func(s *settings) { s.adminPublic = true } }

// WithAdminToken makes POST /rotate require "Authorization: Bearer <token>".
// Empty (the default) requires nothing.
func WithAdminToken(token string) Option { return func(s *settings) { s.adminToken = token } }

// WithAdminHandler adds a handler to the admin endpoints, e.g.
// WithAdminHandler("GET /metrics", promhttp.Handler()).
func WithAdminHandler(pattern string, h http.Handler) Option {
	return func(s *settings) { s.adminHandlers = append(s.adminHandlers, adminHandler{pattern, h}) }
}

// WithPeerDNS turns on the peer watcher: every interval (0 means
// DefaultPeerInterval, 5 s; allowed 100 ms to 1 h) the server resolves
// target, the headless Service of its own pods, and when an address
// appears that was not there before (a pod was added or replaced), it
// rotates its client connections spread over Config.RotateSpread, so that
// clients re-spread over the grown set. Its own address joining does not
// count (a new pod keeps what it was just given), connections younger than
// DefaultRotateMinAge are left alone, and with WithFairShare the watcher
// only supplies the peers: fair share moves just the excess instead, and
// the interval stretches to 50 ms per peer in fleets of over 100 pods
// (Go's resolver costs a pod time per address; fair share's announcements
// find new pods in the meantime). target is a name ("hello-headless",
// "hello-headless.ns.svc.cluster.local", resolved by the system resolver)
// or "dns://SERVER/name" to ask a given DNS server (port 53 unless given).
// No Kubernetes API access is needed. The server logs a warning when the
// name stops resolving, and once when it has not resolved since the server
// started, at the first failed poll 30 s or more after the first (30–35 s
// with the default interval): a mistyped name, a Service that does not
// exist, or pods none of which is ready yet. Until it resolves, nothing but
// age rotation moves connections.
func WithPeerDNS(target string, interval time.Duration) Option {
	return func(s *settings) { s.peerTarget, s.peerInterval = target, interval }
}
