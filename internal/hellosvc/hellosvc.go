// Package hellosvc is the behaviour of the Hello service that the example's
// service (example/hello) and the tests' fixture (internal/testkit) share,
// so that what the tests exercise is what the example runs: the greeting,
// and a stream that ends cleanly when its connection drains.
package hellosvc

import (
	"fmt"
	"time"

	"google.golang.org/grpc"

	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// Greeting is the answer to req from the instance name.
func Greeting(name string, req *hellov1.HiRequest) *hellov1.HiResponse {
	return &hellov1.HiResponse{FromWho: name, Message: message(req.GetToWho(), req.GetMessage())}
}

// Stream serves a HiStream call as the instance name: req.Count greetings
// (0: until the call ends), one every req.IntervalMs (0: 100 ms). When the
// connection starts draining (server.Draining) it ends the stream with
// status OK, so that the client can reopen it on a fresh connection, unless
// ignoreDrain is set, which shows what happens to a stream that does not
// watch.
func Stream(name string, ignoreDrain bool, req *hellov1.HiStreamRequest, stream grpc.ServerStreamingServer[hellov1.HiStreamResponse]) error {
	interval := time.Duration(req.GetIntervalMs()) * time.Millisecond
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	draining := server.Draining(stream.Context())
	if ignoreDrain {
		draining = nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := uint32(1); req.GetCount() == 0 || seq <= req.GetCount(); seq++ {
		msg := &hellov1.HiStreamResponse{FromWho: name, Message: message(req.GetToWho(), req.GetMessage()), Seq: seq}
		if err := stream.Send(msg); err != nil {
			return err
		}
		if seq == req.GetCount() {
			return nil
		}
		select {
		case <-t.C:
		case <-draining:
			return nil
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	return nil
}

func message(toWho, said string) string { return fmt.Sprintf("hi %s, you said %q", toWho, said) }
