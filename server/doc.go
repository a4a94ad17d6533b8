// Package server is rotor's kit for gRPC servers that balance on Kubernetes.
//
// gRPC keeps one long HTTP/2 connection per client. A ClusterIP Service picks
// a pod once per TCP connection, so each client sticks to one pod for ever,
// and pods added by a scale-up get nothing. A headless Service with a
// "dns:///" round_robin client is no better: the client resolves again only
// when a connection ends. The fix on the server side is to end connections
// gracefully (HTTP/2 GOAWAY) on a schedule and on demand, so that clients
// reconnect, kube-proxy picks again and DNS clients re-resolve, and no call
// fails on the way.
//
// # Two ways in
//
// Keep your own grpc.NewServer and lifecycle:
//
//	opts, err := server.Config{}.ServerOptions()
//	s := grpc.NewServer(opts...)
//
// ServerOptions pairs grpc-go's MaxConnectionAge and MaxConnectionAgeGrace
// with a server keepalive and a ping enforcement policy that
// Config.DialOptions matches, validated at once.
//
// Or let the kit run it: New returns a [*Server] that is a
// grpc.ServiceRegistrar, serves health and reflection, sends GOAWAY by age
// and on demand ([Server.Rotate], POST /rotate, [Server.RotateOnSignal], the
// peer watcher, fair share), tells long streams when their connection drains
// ([Draining]), and shuts down in the order Kubernetes needs
// ([Server.Shutdown], [Server.Run]).
//
// # Configuration rules
//
// One rule for every setting of the kit, here and in the gateway package: a
// field left at its zero value takes its default, and [Off] turns a feature
// off where the field allows it (each field says what Off means for it and
// which values it accepts). The zero [Config] is therefore the kit's
// defaults, and DefaultConfig writes them out. Invalid settings are found
// once, at construction ([Config.Validate], [New], [Config.ServerOptions]),
// and reported all together as [*ConfigError] values that name the field,
// the value and what is allowed. Errors of the kit begin with "rotor: "; log
// records carry component=rotor/server.
//
// # Defaults, and why
//
//   - MaxConnectionAge 30 s: after a scale-up, new pods reach their share
//     within about one age; a reconnect costs one handshake per client per
//     30 s. With the peer watcher or fair share, convergence no longer waits
//     for the age, and minutes are fine.
//   - MaxConnectionAgeGrace 10 s: well above a typical unary call; streams
//     that live longer should watch Draining and end themselves.
//   - KeepaliveTime 60 s / KeepaliveTimeout 20 s: finds vanished clients in
//     about 80 s instead of the kernel's minutes.
//   - MinPingInterval 10 s, with clients that ping every 20 s
//     (Config.DialOptions): no client is sent "too_many_pings".
//   - ShutdownDelay 5 s: covers the time endpoints take to drop a
//     terminating pod.
//   - DrainTimeout 45 s: the drain serves, as a lame duck, clients whose
//     address lists still hold the pod. A headless Service's client
//     re-resolves at most once per 30 s (grpc-go, grpc-js and C-core alike),
//     and a GOAWAY only asks it to; 45 s covers that window after the delay,
//     with room for DNS propagation. A drain ends as soon as its clients
//     have left, so most shutdowns take seconds, not 45 s. Set the pod's
//     terminationGracePeriodSeconds to at least ShutdownDelay +
//     DrainTimeout.
//   - RotateSpread 5 s: on-demand rotations move clients over a few seconds,
//     not in one herd.
//   - HandshakeTimeout 10 s, not grpc-go's 120 s: a real client sends its
//     TLS hello and HTTP/2 preface at once.
//
// # How a connection is sent GOAWAY
//
// grpc-go sends GOAWAY on its own only for MaxConnectionAge, MaxConnectionIdle,
// keepalive abuse, or to every connection of a server that stops; it has no
// public API to drain one connection. The kit owns the listener, and hands
// grpc-go each accepted connection wrapped so that the kit sees the HTTP/2
// frames grpc-go writes (above TLS, when the kit serves TLS). To send a
// connection GOAWAY, the kit writes a GOAWAY frame of its own between two of
// them, with error code NO_ERROR and the largest last-stream id, as the
// first GOAWAY of grpc-go's own graceful close is: the client opens no new
// stream on the connection, moves new calls to a new one (transparently:
// a GOAWAY refuses no call), lets its calls in flight finish, and closes the
// connection when they have. Calls still open when the grace ends fail, as
// with grpc-go's MaxConnectionAgeGrace. One grpc.Server serves every
// connection, so a connection costs what it costs with plain grpc-go.
//
// # TLS and limits
//
// [WithTLSFiles] serves TLS, or mutual TLS with a client CA, and reloads
// the files when they change (a Kubernetes Secret update) without a
// restart; [ClientTLS] is the client side, [Server.LocalClientCredentials]
// the same-pod gateway's. Credentials must be given that way, not as
// grpc.Creds in WithGRPCOptions, for the kit to find the HTTP/2 frames.
// Abuse limits: grpc-go's ping policy (MinPingInterval); MaxConnections
// refuses connections over a cap at accept, before any handshake, so that
// clients retry elsewhere; MaxConcurrentStreams and the message sizes bound
// what one connection may ask; HandshakeTimeout bounds a silent one. The
// admin endpoints are served only on their own, loopback-by-default
// listener, never on the gRPC port.
//
// # Shutdown
//
// On Shutdown (Run calls it when its context ends; [SignalContext] ends a
// context on SIGTERM): health reports NOT_SERVING, so readiness probes fail
// and the pod leaves the endpoints; the server keeps serving for
// ShutdownDelay; then it sends GOAWAY to every connection and drains:
// clients that come back, because their address lists still hold the pod,
// are served and sent GOAWAY again every few seconds (reason lameduck); the
// drain ends when no client is left for a second, or at DrainTimeout, when
// calls still open are cut. Hooks registered with
// [Server.RegisterOnShutdown] (an HTTP gateway, say) start with Shutdown
// and follow the same steps.
package server
