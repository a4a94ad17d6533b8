package interceptors

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// ServedByHeader is the response header (gRPC metadata) that ServedBy sets.
const ServedByHeader = "x-served-by"

// ServedBy returns interceptors that add the header "x-served-by: name" to
// every response, unary and streaming, so that a client can see which
// instance (pod) served it. Give it $POD_NAME from the Kubernetes downward
// API. It is off in NewChain unless WithServedBy is given.
func ServedBy(name string) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	md := metadata.Pairs(ServedByHeader, name)
	unary := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		// SetHeader fails only when headers were sent already, which no
		// handler can have done before it runs.
		_ = grpc.SetHeader(ctx, md)
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		_ = ss.SetHeader(md)
		return h(srv, ss)
	}
	return unary, stream
}
