package server

import (
	"log/slog"
	"math"
	"time"

	"github.com/rotorkit/rotor/internal/conf"
)

// Off turns a feature off: MaxConnectionAge: Off never rotates by age,
// ShutdownDelay: Off stops without a delay, RotateSpread: Off sends every
// GOAWAY at once. Each field says what Off means for it, and the fields
// that cannot be turned off reject it. It is the kit's one sentinel: the
// gateway package uses it too. Untyped, so it fits durations and counts.
const Off = conf.Off

// Defaults, used for a Config field left at zero. The package documentation
// explains the choice of each.
const (
	DefaultMaxConnectionAge      = 30 * time.Second
	DefaultMaxConnectionAgeGrace = 10 * time.Second
	DefaultKeepaliveTime         = 60 * time.Second
	DefaultKeepaliveTimeout      = 20 * time.Second
	DefaultMinPingInterval       = 10 * time.Second
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultShutdownDelay         = 5 * time.Second
	DefaultDrainTimeout          = 45 * time.Second
	DefaultRotateSpread          = 5 * time.Second
	DefaultMaxRecvMsgSize        = 4 << 20
	DefaultMaxSendMsgSize        = math.MaxInt32
)

// Config holds every setting of the kit. Its zero value is the kit's
// defaults: a field left at 0 takes the default its comment gives, and Off
// turns a feature off where the field allows it. Values are plain so that a
// Config can be filled from flags or the environment (BindFlags). Validate
// reports what is wrong; New and Config.ServerOptions call it.
type Config struct {
	// MaxConnectionAge is how long a connection lives before the server
	// sends it an HTTP/2 GOAWAY, so that the client opens a new one (a fresh
	// kube-proxy pick, a chance for a DNS client to re-resolve). Each
	// connection gets ±10 % jitter once, as in grpc-go. Default 30 s; Off
	// never rotates by age. Allowed: 1 s or more.
	MaxConnectionAge time.Duration

	// MaxConnectionAgeGrace is how long the calls still open on a
	// connection that was sent GOAWAY may run before the connection is
	// closed; calls open then fail with Unavailable. It applies to every
	// GOAWAY but a shutdown's, whose calls run until DrainTimeout. Default
	// 10 s; Off closes the connection as soon as it is sent GOAWAY.
	// Allowed: 0 (default), Off, or more than 0.
	MaxConnectionAgeGrace time.Duration

	// MaxConnectionIdle sends GOAWAY to a connection that carried no call
	// for this long. Default Off: age rotation bounds a connection's life
	// already. Allowed: Off or 1 s or more.
	MaxConnectionIdle time.Duration

	// KeepaliveTime is how long a connection may be silent before the server
	// pings the client. Default 60 s; Off sends no pings. Allowed: Off or
	// 1 s or more (grpc-go raises lower values to 1 s; the kit rejects them).
	KeepaliveTime time.Duration

	// KeepaliveTimeout is how long the server waits for a ping's answer
	// before it closes the connection. Default 20 s. Allowed: 1 s or more.
	KeepaliveTimeout time.Duration

	// MinPingInterval is the shortest interval between client pings the
	// server tolerates (grpc-go's EnforcementPolicy.MinTime); a client that
	// pings more often is sent GOAWAY "too_many_pings". DialOptions derives
	// the client keepalive from it, so that the pair never trips. Default
	// 10 s. Allowed: 1 s to 1 h.
	MinPingInterval time.Duration

	// ForbidPingsWithoutStream makes a client ping sent while no call is
	// open count as abuse (grpc-go's PermitWithoutStream is the inverse).
	// Default false; DialOptions follows it.
	ForbidPingsWithoutStream bool

	// MaxConcurrentStreams caps the calls open at once on one connection.
	// Default Off, no cap beyond grpc-go's own. Allowed: Off, or 1 to
	// 4294967295 (HTTP/2's limit; 2147483647 where an int has 32 bits).
	MaxConcurrentStreams int

	// MaxRecvMsgSize is the largest message, in bytes, the server accepts;
	// a larger one fails with ResourceExhausted. Default 4 MiB (grpc-go's).
	// Allowed: 1 byte or more.
	MaxRecvMsgSize int

	// MaxSendMsgSize is the largest message, in bytes, the server sends; a
	// larger one fails with ResourceExhausted. Default 2 GiB - 1 (grpc-go's).
	// Allowed: 1 byte or more.
	MaxSendMsgSize int

	// HandshakeTimeout bounds how long a new connection may take to finish
	// its TLS handshake, if any, and send its HTTP/2 preface (grpc-go's
	// ConnectionTimeout); a slower one is closed, so that silent connections
	// cannot hold MaxConnections slots or a drain. Default 10 s (grpc-go's
	// is 120 s). Allowed: 1 s to 5 min.
	HandshakeTimeout time.Duration

	// MaxConnections caps the connections open at once on the kit's Server
	// (New), draining ones included. A connection over the cap is closed as
	// soon as it is accepted, before TLS or HTTP/2, so that the client's
	// next attempt (through kube-proxy or DNS) may reach another pod; the
	// refusal is reported to a RefusalObserver. Default Off, no cap.
	// Allowed: Off or 1 or more. ServerOptions ignores it: grpc-go has no
	// such cap.
	MaxConnections int

	// ShutdownDelay is how long the server keeps serving, already reporting
	// NOT_SERVING, once Shutdown begins and before it sends GOAWAY:
	// Kubernetes removes a terminating pod from the endpoints
	// asynchronously, and clients keep arriving until that news has spread.
	// Default 5 s; Off sends GOAWAY at once. Allowed: Off, or up to 10 min.
	ShutdownDelay time.Duration

	// DrainTimeout bounds the drain that follows the delay: every connection
	// is sent GOAWAY, and the server goes on accepting and serving, as a
	// lame duck, the clients that come back because their address lists
	// still hold this pod (a headless Service's clients re-resolve at most
	// every 30 s, and DNS caches answers). The drain ends as soon as no
	// client connection is left and none has arrived for a second, or at
	// DrainTimeout, when calls still open are cut. The pod's
	// terminationGracePeriodSeconds must cover ShutdownDelay + DrainTimeout.
	// Default 45 s. Allowed: at least MaxConnectionAgeGrace, so that a
	// shutdown never cuts a call that a rotation would let finish, and at
	// most 10 min.
	DrainTimeout time.Duration

	// RotateSpread is the window over which an on-demand rotation (Rotate
	// without a Spread, SIGHUP, POST /rotate, the peer watcher) spreads its
	// GOAWAYs, so that clients reconnect gradually rather than in one herd.
	// Default 5 s; Off sends them all at once. Allowed: Off, or up to 10 min.
	RotateSpread time.Duration
}

// DefaultConfig returns the defaults written out, which is what the zero
// Config means; BindFlags shows them as the flags' defaults.
func DefaultConfig() Config {
	return defaults
}

// defaults holds every field's default: the value a zero field takes.
var defaults = Config{
	MaxConnectionAge:      DefaultMaxConnectionAge,
	MaxConnectionAgeGrace: DefaultMaxConnectionAgeGrace,
	MaxConnectionIdle:     Off,
	KeepaliveTime:         DefaultKeepaliveTime,
	KeepaliveTimeout:      DefaultKeepaliveTimeout,
	MinPingInterval:       DefaultMinPingInterval,
	MaxConcurrentStreams:  Off,
	MaxRecvMsgSize:        DefaultMaxRecvMsgSize,
	MaxSendMsgSize:        DefaultMaxSendMsgSize,
	HandshakeTimeout:      DefaultHandshakeTimeout,
	MaxConnections:        Off,
	ShutdownDelay:         DefaultShutdownDelay,
	DrainTimeout:          DefaultDrainTimeout,
	RotateSpread:          DefaultRotateSpread,
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	conf.Fill(&c, defaults)
	return c
}

// on turns Off into the zero it stands for in a duration that is a length
// of time (a grace, a delay, a spread).
func on(d time.Duration) time.Duration {
	if d == Off {
		return 0
	}
	return d
}

// LogValue logs the settings in force (defaults filled in) as one group,
// keyed by the field names in snake case (max_connection_age), "off" for
// Off.
func (c Config) LogValue() slog.Value {
	return conf.LogValue(c.withDefaults())
}
