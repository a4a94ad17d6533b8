package server

import (
	"log/slog"
	"math"
	"time"
)

// Never disables a duration setting: a connection age of Never means
// connections are never rotated by age, an idle limit of Never means idle
// connections are kept. It is grpc-go's own "infinity".
const Never = time.Duration(math.MaxInt64)

// Defaults. The package documentation explains the choice of each.
const (
	DefaultMaxConnectionAge      = 30 * time.Second
	DefaultMaxConnectionAgeGrace = 10 * time.Second
	DefaultKeepaliveTime         = 60 * time.Second
	DefaultKeepaliveTimeout      = 20 * time.Second
	DefaultMinPingInterval       = 10 * time.Second
	DefaultShutdownDelay         = 5 * time.Second
	DefaultDrainTimeout          = 20 * time.Second
	DefaultRotateSpread          = 5 * time.Second
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultMaxRecvMsgSize        = 4 << 20
	DefaultMaxSendMsgSize        = math.MaxInt32
)

// Config holds every setting of the kit. Start from DefaultConfig and change
// what you need: a field is used exactly as given (0 means 0, not "default"),
// and Validate rejects values that would not do what they seem to, naming the
// field, the value and the allowed range. Fields are plain values so that a
// Config can be filled from flags or the environment (see BindFlags). Options
// and New call Validate for you.
type Config struct {
	// MaxConnectionAge is how long a connection lives before the server asks
	// the client, with an HTTP/2 GOAWAY, to open a new one. Each connection
	// gets ±10 % jitter once, as grpc-go does, so clients do not reconnect in
	// step. It is what makes a Kubernetes Service re-balance: every reconnect
	// is a fresh pick by kube-proxy and a chance for a DNS client to
	// re-resolve. Default 30 s; Never turns age rotation off. Allowed: 1 s
	// or more, or Never.
	MaxConnectionAge time.Duration

	// MaxConnectionAgeGrace is how long calls still open on a connection that
	// was told to go away may run before the connection is closed hard; calls
	// still open then fail with Unavailable. Set it above your longest unary
	// call; 0 closes at once. Default 10 s. Allowed: 0 or more. It also bounds
	// on-demand rotations (Server.Rotate), so New accepts it with an age of
	// Never; Options, which has no on-demand rotation, rejects that pair.
	MaxConnectionAgeGrace time.Duration

	// MaxConnectionIdle closes, with a GOAWAY, a connection that had no call
	// for this long. Default Never: age rotation already bounds a
	// connection's life. Allowed: 1 s or more, or Never.
	MaxConnectionIdle time.Duration

	// KeepaliveTime is how long a connection may be silent before the server
	// pings the client to check it is still there. Default 60 s. Allowed: 1 s
	// or more (grpc-go silently raises lower values to 1 s; rotor rejects
	// them instead), or Never.
	KeepaliveTime time.Duration

	// KeepaliveTimeout is how long the server waits for a ping's answer
	// before it closes the connection. Default 20 s. Allowed: 1 s or more.
	KeepaliveTimeout time.Duration

	// MinPingInterval is the shortest interval between client pings the
	// server tolerates (grpc-go's EnforcementPolicy.MinTime). A client that
	// pings more often is sent GOAWAY "too_many_pings". ClientOptions derives
	// the client keepalive from it so the pair never trips. Default 10 s.
	// Allowed: 1 s to 1 h.
	MinPingInterval time.Duration

	// ForbidPingsWithoutStream makes the server count a client ping sent
	// while no call is open as a strike (grpc-go's PermitWithoutStream is the
	// inverse). The default, false, lets idle clients keep their connection
	// checked; ClientOptions follows this setting.
	ForbidPingsWithoutStream bool

	// MaxConcurrentStreams caps the calls open at once on one connection. 0
	// means no limit beyond grpc-go's own (effectively none).
	MaxConcurrentStreams uint32

	// MaxRecvMsgSize is the largest message, in bytes, the server accepts;
	// larger ones fail with ResourceExhausted. Default 4 MiB (grpc-go's).
	// Allowed: 1 or more.
	MaxRecvMsgSize int

	// MaxSendMsgSize is the largest message, in bytes, the server sends;
	// larger ones fail with ResourceExhausted. Default 2 GiB - 1 (grpc-go's).
	// Allowed: 1 or more.
	MaxSendMsgSize int

	// HandshakeTimeout bounds how long a new connection may take to
	// establish itself: the TLS handshake, if any, and the client's HTTP/2
	// preface and SETTINGS (grpc-go's ConnectionTimeout). A connection that
	// is slower is closed. It is what keeps silent or trickling connections
	// from holding MaxConnections slots, or a drain, for long. Default 10 s
	// (grpc-go's is 120 s): a real client sends its preface at once.
	// Allowed: 1 s to 5 min.
	HandshakeTimeout time.Duration

	// MaxConnections caps the connections open at once on the kit's Server
	// (New), draining ones included. A connection over the cap is closed as
	// soon as it is accepted, before any TLS or HTTP/2, so the client's call
	// fails with Unavailable and its next attempt (through kube-proxy or
	// DNS) may reach another pod; the refusal is reported to a
	// RefusalObserver. 0, the default, means no limit. Allowed: 0 or more.
	// Options ignores it: grpc-go has no such limit.
	MaxConnections int

	// ShutdownDelay is how long the server keeps serving, already reporting
	// NOT_SERVING, after it is told to stop and before it sends GOAWAY to its
	// clients. Kubernetes removes a terminating pod from the Service
	// endpoints asynchronously; without the delay new connections would still
	// arrive at a server that no longer accepts them. Default 5 s. Allowed: 0
	// to 10 min (the pod's terminationGracePeriodSeconds must cover it).
	ShutdownDelay time.Duration

	// DrainTimeout bounds the graceful part of a shutdown: after the GOAWAY,
	// calls have this long to finish before the server stops hard. Keep
	// ShutdownDelay + DrainTimeout below the pod's
	// terminationGracePeriodSeconds. Default 20 s. Allowed: at least
	// MaxConnectionAgeGrace, so that a shutdown never cuts calls that an
	// ordinary rotation would have let finish.
	DrainTimeout time.Duration

	// RotateSpread is the window over which an on-demand rotation (SIGHUP,
	// the admin endpoint's default, the peer watcher) spreads its GOAWAYs,
	// so that clients reconnect gradually instead of in one herd. Default
	// 5 s. Allowed: 0 (all at once) to 10 min.
	RotateSpread time.Duration
}

// DefaultConfig returns the kit's defaults. The package documentation
// explains the choice of each.
func DefaultConfig() Config {
	return Config{
		MaxConnectionAge:      DefaultMaxConnectionAge,
		MaxConnectionAgeGrace: DefaultMaxConnectionAgeGrace,
		MaxConnectionIdle:     Never,
		KeepaliveTime:         DefaultKeepaliveTime,
		KeepaliveTimeout:      DefaultKeepaliveTimeout,
		MinPingInterval:       DefaultMinPingInterval,
		HandshakeTimeout:      DefaultHandshakeTimeout,
		MaxRecvMsgSize:        DefaultMaxRecvMsgSize,
		MaxSendMsgSize:        DefaultMaxSendMsgSize,
		ShutdownDelay:         DefaultShutdownDelay,
		DrainTimeout:          DefaultDrainTimeout,
		RotateSpread:          DefaultRotateSpread,
	}
}

// LogValue prints the settings in force as one log group.
func (c Config) LogValue() slog.Value {
	d := func(k string, v time.Duration) slog.Attr { return slog.String(k, fmtValue(v)) }
	return slog.GroupValue(
		d("max_connection_age", c.MaxConnectionAge),
		d("max_connection_age_grace", c.MaxConnectionAgeGrace),
		d("max_connection_idle", c.MaxConnectionIdle),
		d("keepalive_time", c.KeepaliveTime),
		d("keepalive_timeout", c.KeepaliveTimeout),
		d("min_ping_interval", c.MinPingInterval),
		slog.Bool("forbid_pings_without_stream", c.ForbidPingsWithoutStream),
		slog.Uint64("max_concurrent_streams", uint64(c.MaxConcurrentStreams)),
		slog.Int("max_recv_msg_size", c.MaxRecvMsgSize),
		slog.Int("max_send_msg_size", c.MaxSendMsgSize),
		d("handshake_timeout", c.HandshakeTimeout),
		slog.Int("max_connections", c.MaxConnections),
		d("shutdown_delay", c.ShutdownDelay),
		d("drain_timeout", c.DrainTimeout),
		d("rotate_spread", c.RotateSpread),
	)
}
