package server

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"
)

// RoundRobinServiceConfig is a gRPC service config that spreads calls over
// every address the resolver returns. With a headless Service and a
// "dns:///name:port" target, the client keeps one connection per pod and
// round-robins across them; grpc-go's default, pick_first, would use one pod.
const RoundRobinServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// clientMinKeepaliveTime is grpc-go's floor for a client's keepalive time.
const clientMinKeepaliveTime = 10 * time.Second

// reconnectBackoff is DialOptions' connection backoff: grpc-go's default
// (1 s, ×1.6, ±20 %) with at most 10 s between two attempts instead of
// 120 s. A variable so that a test can scale it down.
var reconnectBackoff = backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 10 * time.Second}

// minConnectTimeout is grpc-go's default time a connection attempt may
// take; setting ConnectParams needs it set too.
const minConnectTimeout = 20 * time.Second

// DialOptions returns the dial options rotor recommends for clients of a
// server configured with c (defaults filled in):
//
//   - a keepalive that pings no more often than twice the server's
//     MinPingInterval (and never below grpc-go's 10 s floor), so that a
//     client is never sent GOAWAY "too_many_pings", and finds a dead pod
//     within Time + Timeout instead of the kernel's TCP timeout;
//   - round_robin as the default load-balancing policy, which matters for a
//     "dns:///" target of a headless Service and is harmless for a
//     ClusterIP;
//   - a reconnect backoff that waits at most 10 s between two attempts
//     (grpc-go's grows to 120 s), so that after an outage of every pod
//     clients are back within about 10 s of the pods' return.
//
// Transport credentials are not included: add grpc.WithTransportCredentials.
// The server's GOAWAYs make the client reconnect, and re-resolve a dns:///
// target (at most once per 30 s in grpc-go), at least every
// MaxConnectionAge.
func (c Config) DialOptions() []grpc.DialOption {
	c = c.withDefaults()
	t := max(2*c.MinPingInterval, clientMinKeepaliveTime)
	return []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                t,
			Timeout:             max(c.KeepaliveTimeout, time.Second),
			PermitWithoutStream: !c.ForbidPingsWithoutStream,
		}),
		grpc.WithDefaultServiceConfig(RoundRobinServiceConfig),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnectBackoff, MinConnectTimeout: minConnectTimeout}),
	}
}
