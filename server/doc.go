// Package server is rotor's kit for gRPC servers that balance on Kubernetes.
//
// gRPC keeps one long HTTP/2 connection per client. A ClusterIP Service picks
// a pod once per TCP connection, so each client sticks to one pod for ever,
// and pods added by a scale-up get nothing. A headless Service with a
// "dns:///" round_robin client is no better: the client resolves again only
// when a connection breaks. The fix on the server side is to end every
// connection gracefully (HTTP/2 GOAWAY) on a schedule and on demand, so that
// clients reconnect, kube-proxy picks again and DNS clients re-resolve, and
// no call fails on the way.
//
// # Two ways in
//
// Keep your own grpc.NewServer and lifecycle:
//
//	opts, err := server.Options(server.DefaultConfig())
//	s := grpc.NewServer(opts...)
//
// Options pairs grpc-go's MaxConnectionAge and MaxConnectionAgeGrace with a
// server keepalive and a ping enforcement policy that ClientOptions matches,
// validated at once (see Config.Validate and ConfigError).
//
// Or let the kit run it: New returns a *Server that is a
// grpc.ServiceRegistrar, serves health and reflection, rotates connections by
// age and on demand (Rotate, POST /rotate, SIGHUP, the peer watcher), tells
// long streams when their connection drains (Draining), and shuts down in the
// order Kubernetes needs (Shutdown, Run).
//
// # Defaults, and why
//
//   - MaxConnectionAge 30 s. After a scale-up, new pods reach their share
//     within about one age (plus the jitter); a reconnect costs one TCP (and
//     TLS) handshake per client per 30 s, which is noise. Shorter ages buy
//     little and multiply handshakes; much longer ones leave new pods idle
//     for minutes. With the peer watcher (WithPeerDNS) convergence after a
//     scale-up no longer waits for the age, so a longer age (minutes) is fine.
//   - MaxConnectionAgeGrace 10 s: well above a typical unary call, so a
//     rotation never cuts one; streams that must live longer should watch
//     Draining and end themselves (their client reopens them).
//   - KeepaliveTime 60 s / KeepaliveTimeout 20 s: finds dead clients
//     (vanished nodes) in about 80 s instead of the kernel's minutes.
//   - MinPingInterval 10 s with pings allowed without calls, and clients that
//     ping every 20 s (ClientOptions): no client is ever sent "too_many_pings".
//   - ShutdownDelay 5 s + DrainTimeout 20 s = 25 s, inside Kubernetes'
//     default terminationGracePeriodSeconds of 30 s. The delay covers the
//     time endpoints take to drop a terminating pod; DrainTimeout is at
//     least the grace so a shutdown never cuts what a rotation would not.
//   - RotateSpread 5 s: on-demand rotations move clients over a few seconds
//     rather than in one herd.
//   - HandshakeTimeout 10 s, not grpc-go's 120 s: a real client sends its
//     TLS hello and HTTP/2 preface at once, and a connection that does not
//     must not hold a MaxConnections slot (or a drain) for minutes.
//
// # How rotation works
//
// grpc-go sends GOAWAY to a connection only when it reaches MaxConnectionAge
// or when its whole grpc.Server stops gracefully; there is no public API to
// drain one connection, nor to change the age of a running server. So the
// kit owns the listener and serves every accepted connection with its own
// *grpc.Server, built from the same options and the same recorded service
// registrations. GracefulStop on that server is a graceful drain of exactly
// that connection: GOAWAY, the calls in flight finish, the client moves its
// new calls to a fresh connection (grpc-go retries transparently the calls
// that never reached the server). This gives exact control - rotate all, a
// fraction, a count, the oldest first, spread over a window - with public
// APIs only. The kit also runs the age timer itself (with grpc-go's ±10 %
// jitter, drawn once per connection) so that age rotation, too, can tell
// streams through Draining and be counted by reason.
//
// The cost is one grpc.Server per connection: no extra goroutine (Serve
// returns as soon as it has handed the connection over) and about 32 KB of
// heap more than a plain grpc.Server per open connection (BenchmarkConnCost:
// 8 goroutines and 28 KB per connection, client and server side, with a
// plain server; 8 and 60 KB with the kit). A per-connection
// drain waits until grpc-go has taken the connection, because stopping a
// server whose connection is still in its handshake closes it without a
// GOAWAY and fails the client's first call.
//
// # TLS and limits
//
// WithTLSFiles serves TLS, or mutual TLS with a client CA, and reloads the
// files when they change (a Kubernetes Secret update), without a restart;
// ClientTLS is the client side, LocalClientCredentials the same-pod gateway's.
// Abuse limits: grpc-go's ping policy sends "too_many_pings" GOAWAYs
// (MinPingInterval); MaxConnections refuses connections over a cap at accept,
// before any handshake, so that clients retry elsewhere;
// MaxConcurrentStreams and the message sizes bound what one connection may
// ask. The admin endpoints are served only on their own, loopback-by-default
// listener, never on the gRPC port.
//
// # Shutdown
//
// On SIGTERM (Run) or Shutdown: health reports NOT_SERVING, so readiness
// probes fail and the pod leaves the endpoints; the server keeps serving for
// ShutdownDelay; then it stops accepting and sends GOAWAY on every
// connection; calls still open at DrainTimeout are cut. Hooks registered with
// RegisterOnDrain (an HTTP gateway, say) shut down in the same step. Set the
// pod's terminationGracePeriodSeconds to at least ShutdownDelay +
// DrainTimeout.
package server
