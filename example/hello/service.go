// Package hello implements the example's Hello service: every answer names
// the instance that served it, so clients, tests and the lab can see how
// calls spread over pods.
//
// A Hi call can be given a cost: with the gRPC metadata "rotor-work: N"
// ([WorkKey]) the handler computes N fixed units of CPU work (SHA-256
// digests) before it answers, at most [MaxWork]; an absent or malformed
// value costs nothing. The balance lab uses it for calls of uneven
// cost. The example's REST gateway does not forward the key, so only gRPC
// callers can ask for work:
//
//	grpcurl -plaintext -H 'rotor-work: 20000' -d '{"toWho":"x"}' localhost:50051 hello.v1.Hello/Hi
package hello

import (
	"context"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/hellosvc"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// Service answers Hello calls as the instance Name.
type Service struct {
	hellov1.UnimplementedHelloServer

	// Name identifies the serving instance in every answer.
	Name string
	// IgnoreDrain makes HiStream keep streaming when its connection drains,
	// to show what happens to streams that do not watch server.Draining.
	IgnoreDrain bool
}

// Identity returns the instance name: $POD_NAME (from the Kubernetes
// downward API), else the host name.
func Identity() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "unknown"
}

// Hi answers one greeting, after the work units the call's metadata asks
// for (WorkUnits). A call cancelled during its work fails with the context's
// status.
func (s *Service) Hi(ctx context.Context, req *hellov1.HiRequest) (*hellov1.HiResponse, error) {
	if n := WorkUnits(ctx); n > 0 {
		if _, err := doWork(ctx, n); err != nil {
			return nil, status.FromContextError(err).Err()
		}
	}
	return hellosvc.Greeting(s.Name, req), nil
}

// HiStream sends req.Count greetings (0: until cancelled), one every
// req.IntervalMs. When the connection starts draining (server.Draining) it
// ends the stream cleanly with status OK, unless IgnoreDrain is set, so that
// the client can reopen it on a fresh connection.
func (s *Service) HiStream(req *hellov1.HiStreamRequest, stream grpc.ServerStreamingServer[hellov1.HiStreamResponse]) error {
	return hellosvc.Stream(s.Name, s.IgnoreDrain, req, stream)
}
