package gateway_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// TestReadyzFollowsServerDrain checks that /readyz turns 503 as soon as the
// gRPC server's shutdown sets its health to NOT_SERVING, while REST calls keep
// succeeding during the server's ShutdownDelay, as Kubernetes needs.
func TestReadyzFollowsServerDrain(t *testing.T) {
	t.Parallel()
	// The gateway keeps dialling the server's one address, as a client
	// whose address list still holds a terminating pod: the server serves
	// it as a lame duck until the DrainTimeout.
	b := startBackend(t, "pod-a", server.WithShutdownDelay(2*time.Second),
		server.WithMaxConnectionAgeGrace(time.Second), server.WithDrainTimeout(2*time.Second))
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
	testkit.Eventually(t, time.Second, "/readyz 503 after the server's Shutdown", func() bool {
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
	if err := testkit.Receive(t, shutdown, 8*time.Second, "the server's Shutdown to finish at its drain deadline"); err != nil {
		t.Fatalf("server Shutdown: %v", err)
	}
}

// TestShutdownInDrain joins the gateway to the server's shutdown, as the
// example server does: both follow the same delay rule, and once the gateway
// has stopped, its connections leave the server, whose drain ends a second
// later.
func TestShutdownInDrain(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a", server.WithShutdownDelay(200*time.Millisecond))
	gw, base := startGateway(t, b, gateway.Config{ShutdownDelay: 200 * time.Millisecond})
	stopped := make(chan error, 1)
	b.srv.RegisterOnShutdown(func(ctx context.Context) { stopped <- gw.Shutdown(ctx) })
	if resp, _ := do(t, nil, "POST", base+"/v1/hi", `{}`); resp.StatusCode != 200 {
		t.Fatalf("POST /v1/hi: %d", resp.StatusCode)
	}
	start := time.Now()
	if err := b.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// server.Shutdown waits for its hooks: the gateway's Shutdown has
	// finished, cleanly.
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("gateway Shutdown: %v", err)
		}
	default:
		t.Fatal("server.Shutdown returned before its drain hook finished")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s, want about the 200ms delay and the drain's quiet second", d)
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
	opts := append(server.DefaultConfig().DialOptions(), grpc.WithResolvers(r))
	_, base := startGateway(t, a, gateway.Config{Endpoint: "twopods:///hello", DialOptions: opts})
	ready := func() int {
		resp, _ := do(t, nil, "GET", base+"/readyz", "")
		return resp.StatusCode
	}
	testkit.Eventually(t, 2*time.Second, "/readyz 200 with two serving backends", func() bool { return ready() == 200 })

	go func() { _ = a.srv.Shutdown(context.Background()) }()
	for i := range 20 { // about 200 ms, far longer than a health update takes
		if code := ready(); code != 200 {
			t.Fatalf("/readyz %d after one of two backends started draining (check %d), want 200", code, i)
		}
		time.Sleep(10 * time.Millisecond)
	}
	go func() { _ = b.srv.Shutdown(context.Background()) }()
	testkit.Eventually(t, time.Second, "/readyz 503 once both backends drain", func() bool { return ready() == 503 })
}

// After an outage of the backend, REST and /readyz recover together, within
// about a second of its return: /readyz follows the connection REST calls
// take, and the Gateway retries a lost backend every 500 ms at most (a
// probe that finds it down retries at once). Once /readyz says 200, REST
// calls succeed.
func TestReadyzAndRESTAgreeAfterOutage(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	addr := b.addr
	_, base := startGateway(t, b, gateway.Config{})
	if resp, body := do(t, nil, "POST", base+"/v1/hi", `{}`); resp.StatusCode != 200 {
		t.Fatalf("POST /v1/hi: %d %s", resp.StatusCode, body)
	}
	_ = b.srv.Close()
	testkit.Eventually(t, 3*time.Second, "/readyz 503 once the backend is gone", func() bool {
		resp, _ := do(t, nil, "GET", base+"/readyz", "")
		return resp.StatusCode == 503
	})
	// Long enough for grpc-go's default backoff to have grown past 5 s.
	time.Sleep(6 * time.Second)

	srv, err := server.New(server.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, &testkit.Hello{Name: "pod-a"})
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the backend's port was taken meanwhile: %v", err)
	}
	back := time.Now()
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })

	var readyAt, restAt time.Duration
	for time.Since(back) < 5*time.Second && (readyAt == 0 || restAt == 0) {
		ready, _ := do(t, nil, "GET", base+"/readyz", "")
		rest, body := do(t, nil, "POST", base+"/v1/hi", `{}`)
		now := time.Since(back)
		if ready.StatusCode == 200 && readyAt == 0 {
			readyAt = now
		}
		if rest.StatusCode == 200 && restAt == 0 {
			restAt = now
		}
		if readyAt != 0 && rest.StatusCode != 200 {
			t.Errorf("%v after the backend's return /readyz has said 200 (at %v), but POST /v1/hi answers %d %s", now, readyAt, rest.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("backend back; /readyz 200 after %v, REST 200 after %v", readyAt, restAt)
	if readyAt == 0 || restAt == 0 || readyAt > 1500*time.Millisecond || restAt > 1500*time.Millisecond {
		t.Errorf("/readyz 200 after %v, REST after %v; want both within about a second of the backend's return", readyAt, restAt)
	}
	if d := readyAt - restAt; d > time.Second || d < -time.Second {
		t.Errorf("/readyz and REST recovered %v apart; want within 1 s", d)
	}
}
