package server

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // registers weighted_round_robin
	"google.golang.org/grpc/resolver"
)

// wrrServiceConfig selects weighted_round_robin (gRFC A58) with grpc-go's
// defaults: weights from the per-call ORCA reports the servers attach to
// their responses (WithORCA), a 10 s blackout before a new address's weight
// counts, weights recomputed every second. A variable so that a test can
// shorten the blackout.
var wrrServiceConfig = `{"loadBalancingConfig":[{"weighted_round_robin":{}}]}`

// WeightedRoundRobin returns a dial option that replaces round_robin, the
// policy of Config.DialOptions, with weighted_round_robin (gRFC A58): the
// client still keeps a connection to every address of a dns:/// target (a
// headless Service's pods), and weighs each by the queries per second it
// serves for the utilization it reports, so that busier pods get fewer calls.
// The servers must report their load: WithORCA. Append it after
// Config.DialOptions, whose service config it overrides:
//
//	opts := append(cfg.DialOptions(), server.WeightedRoundRobin())
func WeightedRoundRobin() grpc.DialOption {
	return grpc.WithDefaultServiceConfig(wrrServiceConfig)
}

// maxSpread bounds SpreadConnections: connections are cheap (one HTTP/2
// connection and a few goroutines each), but not free.
const maxSpread = 256

// SpreadConnections returns a dial option that makes one grpc.ClientConn
// keep k TCP connections to every address its resolver returns and
// round-robin its calls over all of them, for a client that carries much of
// a service's load on its own. Behind a ClusterIP Service each of the k
// connections is a kube-proxy pick of its own, so the client's calls spread
// over up to k pods instead of one, and each connection is sent GOAWAY and
// picked again like any other. Allowed: 1 to 256; otherwise the error is a
// *ConfigError.
//
// How: grpc-go keeps one connection per distinct address string, so the
// option lists each address k times under strings that name the same
// endpoint ("10.96.0.10:50051", "10.96.0.10:050051", …: Go's dialer reads
// a port with leading zeros as the same number). It works with grpc-go's
// own dialer and with dialers that use net.Dial's address syntax. Use it
// with round_robin (Config.DialOptions) or weighted_round_robin.
func SpreadConnections(k int) (grpc.DialOption, error) {
	if k < 1 || k > maxSpread {
		return nil, &ConfigError{Field: "server.SpreadConnections k", Value: strconv.Itoa(k), Want: fmt.Sprintf("1 to %d connections per address", maxSpread)}
	}
	var builders []resolver.Builder
	for _, scheme := range []string{"dns", "passthrough"} {
		if b := resolver.Get(scheme); b != nil {
			builders = append(builders, spreadBuilder{Builder: b, k: k})
		}
	}
	return grpc.WithResolvers(builders...), nil
}

// spreadBuilder builds its scheme's resolver with a ClientConn that lists
// every address k times.
type spreadBuilder struct {
	resolver.Builder
	k int
}

func (b spreadBuilder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	return b.Builder.Build(t, &spreadConn{ClientConn: cc, k: b.k}, o)
}

type spreadConn struct {
	resolver.ClientConn
	k int
}

func (c *spreadConn) UpdateState(s resolver.State) error {
	s.Endpoints = spreadEndpoints(s.Endpoints, c.k)
	s.Addresses = spreadAddresses(s.Addresses, c.k)
	return c.ClientConn.UpdateState(s)
}

func spreadEndpoints(eps []resolver.Endpoint, k int) []resolver.Endpoint {
	if eps == nil {
		return nil
	}
	out := make([]resolver.Endpoint, 0, k*len(eps))
	for i := range k {
		for _, e := range eps {
			e.Addresses = padAll(e.Addresses, i)
			out = append(out, e)
		}
	}
	return out
}

func spreadAddresses(addrs []resolver.Address, k int) []resolver.Address {
	if addrs == nil {
		return nil
	}
	out := make([]resolver.Address, 0, k*len(addrs))
	for i := range k {
		out = append(out, padAll(addrs, i)...)
	}
	return out
}

// padAll returns a copy of addrs with n zeros before each port.
func padAll(addrs []resolver.Address, n int) []resolver.Address {
	out := make([]resolver.Address, len(addrs))
	for i, a := range addrs {
		a.Addr = padPort(a.Addr, n)
		out[i] = a
	}
	return out
}

// padPort puts n zeros before the port of a host:port address; anything
// else is returned as is.
func padPort(addr string, n int) string {
	i := strings.LastIndexByte(addr, ':')
	if n == 0 || i < 0 || i == len(addr)-1 || strings.Trim(addr[i+1:], "0123456789") != "" {
		return addr
	}
	return addr[:i+1] + strings.Repeat("0", n) + addr[i+1:]
}
