package server_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/testkit"
	"github.com/rotorkit/rotor/server"
)

// Shutdown under load: calls started before NOT_SERVING all succeed, the
// health service says NOT_SERVING during the delay, and a stream that never
// ends does not hold the server past the drain deadline.
func TestShutdownUnderLoad(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.ShutdownDelay = 500 * time.Millisecond
	cfg.MaxConnectionAgeGrace = time.Second
	cfg.DrainTimeout = 1500 * time.Millisecond
	srv, addr := testkit.StartRotor(t, &testkit.Hello{Name: "a", IgnoreDrain: true}, server.WithConfig(cfg))
	client := dial(t, addr, cfg)
	stream := testkit.OpenStream(t.Context(), t, client)

	load := testkit.StartCallLoad(t, client, 4)
	time.Sleep(300 * time.Millisecond) // let load build up

	load.Mark() // just before Shutdown makes health NOT_SERVING
	begin := time.Now()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()

	// During the delay the server still serves but reports NOT_SERVING.
	time.Sleep(200 * time.Millisecond)
	hc := healthpb.NewHealthClient(clientConn(t, addr, cfg))
	resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check during the shutdown delay: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health during shutdown delay = %v, want NOT_SERVING", resp.GetStatus())
	}

	err = <-done
	took := time.Since(begin)
	before, beforeFailed, firstErr := load.Stop()
	if err != nil {
		t.Errorf("Shutdown() = %v, want nil: the stream should have been cut at the drain deadline, not the context's", err)
	}
	// Delay 0.5 s + drain deadline 1.5 s.
	if took > 3500*time.Millisecond {
		t.Errorf("Shutdown took %v with a stream that never ends; want about delay + drain timeout (2 s)", took)
	}
	if beforeFailed != 0 {
		t.Errorf("%d of %d calls started before NOT_SERVING failed; first: %v", beforeFailed, before, firstErr)
	}
	if before == 0 {
		t.Error("no call was made before the shutdown")
	}
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("never-ending stream ended with %v, want Unavailable at the drain deadline", err)
	}
}

// Shutdown honours its context's deadline even when it is shorter than the
// configured delay and drain.
func TestShutdownContextDeadline(t *testing.T) {
	cfg := server.DefaultConfig() // delay 5 s, drain 20 s
	srv, addr := testkit.StartRotor(t, &testkit.Hello{Name: "a", IgnoreDrain: true}, server.WithConfig(cfg))
	testkit.OpenStream(t.Context(), t, dial(t, addr, cfg))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := srv.Shutdown(ctx)
	if err != context.DeadlineExceeded {
		t.Errorf("Shutdown() = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Shutdown took %v, want about the context's 300 ms", took)
	}
	// A second call returns the first one's result at once.
	if err2 := srv.Shutdown(context.Background()); err2 != err {
		t.Errorf("second Shutdown() = %v, want %v", err2, err)
	}
}
