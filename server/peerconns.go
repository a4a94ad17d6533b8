package server

import (
	"context"
	"net"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	fairsharev1 "github.com/rotorkit/rotor/proto/gen/rotor/fairshare/v1"
)

// peerConns keeps one client connection per peer for the load queries.
type peerConns struct {
	dialOpts []grpc.DialOption
	portOf   func() int

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerConns(opts []grpc.DialOption, port func() int) *peerConns {
	return &peerConns{dialOpts: opts, portOf: port, conns: map[string]*grpc.ClientConn{}}
}

// port is the peers' gRPC port, 0 before the server listens.
func (p *peerConns) port() int { return p.portOf() }

// get returns the connection to the peer at ip, dialled on first use; nil
// before the server listens (no port yet).
func (p *peerConns) get(ip string) *grpc.ClientConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[ip]; ok {
		return cc
	}
	port := p.portOf()
	if port == 0 {
		return nil
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, p.dialOpts...)
	cc, err := grpc.NewClient(net.JoinHostPort(ip, strconv.Itoa(port)), opts...)
	if err != nil {
		return nil
	}
	p.conns[ip] = cc
	return cc
}

// keep closes the connections to peers not in ips (all, for nil).
func (p *peerConns) keep(ips []string) {
	live := make(map[string]bool, len(ips))
	for _, ip := range ips {
		live[ip] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for ip, cc := range p.conns {
		if !live[ip] {
			cc.Close()
			delete(p.conns, ip)
		}
	}
}

// query asks every peer in ips for its load at once, with req, and returns
// the answers of those that gave one within ctx, by IP, leaving out self (a
// peer that answers with this server's own instance id).
func (p *peerConns) query(ctx context.Context, ips []string, req *fairsharev1.GetLoadRequest, self string) map[string]*fairsharev1.GetLoadResponse {
	var (
		mu  sync.Mutex
		out = map[string]*fairsharev1.GetLoadResponse{}
		wg  sync.WaitGroup
	)
	for _, ip := range ips {
		cc := p.get(ip)
		if cc == nil {
			continue
		}
		wg.Go(func() {
			resp, err := fairsharev1.NewLoadServiceClient(cc).GetLoad(ctx, req)
			if err != nil || resp.GetInstance() == self {
				return
			}
			mu.Lock()
			out[ip] = resp
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
