package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/server"
)

// TestReadyzFollowsServerDrain checks that /readyz turns 503 as soon as the
// gRPC server's shutdown sets its health to NOT_SERVING, while REST calls keep
// succeeding during the server's ShutdownDelay, as Kubernetes needs.
func TestReadyzFollowsServerDrain(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a", server.WithShutdownDelay(2*time.Second))
	_, base := startGateway(t, b, gateway.Config{})

	if resp, body := do(t, nil, "GET", base+"/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("/readyz while serving: %d %s, want 200", resp.StatusCode, body)
	}
	if resp, _ := do(t, nil, "HEAD", base+"/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("HEAD /readyz while serving: %d, want 200", resp.StatusCode)
	}

	shutdown := make(chan error, 1)
	go func() { shutdown <- b.srv.Shutdown(context.Background()) }()
	start := time.Now()
	eventually(t, time.Second, "/readyz 503 after the server's Shutdown", func() bool {
		resp, _ := do(t, nil, "GET", base+"/readyz", "")
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if time.Since(start) > 1500*time.Millisecond {
		t.Fatal("the check ran past the ShutdownDelay; the test proves nothing")
	}
	// Still inside the 2 s ShutdownDelay: the server serves, and so must REST.
	if resp, body := do(t, nil, "POST", base+"/v1/hi", `{"to_who":"you"}`); resp.StatusCode != 200 {
		t.Errorf("POST /v1/hi during the server's ShutdownDelay: %d %s, want 200", resp.StatusCode, body)
	}
	if resp, _ := do(t, nil, "GET", base+"/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz during the drain: %d, want 200", resp.StatusCode)
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("server Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's Shutdown did not finish: the gateway's connections hold it")
	}
}

// TestShutdownInDrain joins the gateway to the server's drain, as the example
// server does, and checks that both stop within the delay plus a little.
func TestShutdownInDrain(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a", server.WithShutdownDelay(200*time.Millisecond))
	gw, base := startGateway(t, b, gateway.Config{})
	stopped := make(chan error, 1)
	b.srv.RegisterOnDrain(func(ctx context.Context) { stopped <- gw.Shutdown(ctx) })
	if resp, _ := do(t, nil, "POST", base+"/v1/hi", `{}`); resp.StatusCode != 200 {
		t.Fatalf("POST /v1/hi: %d", resp.StatusCode)
	}
	start := time.Now()
	if err := b.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// server.Shutdown waits for its drain hooks, whose context lives until
	// the drain deadline: the gateway's Shutdown has finished, cleanly.
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("gateway Shutdown: %v", err)
		}
	default:
		t.Fatal("server.Shutdown returned before its drain hook finished")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %s, want about the 200ms delay", d)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the gateway still accepts connections after Shutdown")
	}
}

// TestReadyzAnyBackend gives the gateway two gRPC backends, as a headless
// Service would: /readyz stays 200 while one of them drains, and turns 503
// when both do.
func TestReadyzAnyBackend(t *testing.T) {
	t.Parallel()
	a := startBackend(t, "pod-a", server.WithShutdownDelay(3*time.Second))
	b := startBackend(t, "pod-b", server.WithShutdownDelay(3*time.Second))
	r := manual.NewBuilderWithScheme("twopods")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a.addr}, {Addr: b.addr}}})
	opts := append(server.ClientOptions(server.DefaultConfig()), grpc.WithResolvers(r))
	_, base := startGateway(t, a, gateway.Config{GRPCEndpoint: "twopods:///hello", DialOptions: opts})
	ready := func() int {
		resp, _ := do(t, nil, "GET", base+"/readyz", "")
		return resp.StatusCode
	}
	eventually(t, 2*time.Second, "/readyz 200 with two serving backends", func() bool { return ready() == 200 })

	go func() { _ = a.srv.Shutdown(context.Background()) }()
	for i := range 20 { // about 200 ms, far longer than a health update takes
		if code := ready(); code != 200 {
			t.Fatalf("/readyz %d after one of two backends started draining (check %d), want 200", code, i)
		}
		time.Sleep(10 * time.Millisecond)
	}
	go func() { _ = b.srv.Shutdown(context.Background()) }()
	eventually(t, time.Second, "/readyz 503 once both backends drain", func() bool { return ready() == 503 })
}
