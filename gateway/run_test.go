package gateway_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// TestRun serves with the one-call Run, then ends its ctx: /readyz turns 503
// during the ShutdownDelay while requests still succeed, and Run returns nil.
// New gets the same ctx, as a program that has one signal context gives
// it: its end must not close the REST calls' gRPC connections.
func TestRun(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-run")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	base := "http://" + addr

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		gw, err := gateway.New(ctx, gateway.Config{
			Fn: hellov1.RegisterHelloHandlerFromEndpoint, Endpoint: b.addr, HTTPAddr: addr,
			ShutdownDelay: 500 * time.Millisecond, Logger: quiet,
		})
		if err != nil {
			done <- err
			return
		}
		done <- gw.Run(ctx)
	}()
	testkit.Eventually(t, 2*time.Second, "/readyz 200 after Run starts", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	cancel()
	testkit.Eventually(t, 400*time.Millisecond, "/readyz 503 once ctx ends", func() bool {
		resp, _ := do(t, nil, "GET", base+"/readyz", "")
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if resp, _ := do(t, nil, "POST", base+"/v1/hi", `{}`); resp.StatusCode != 200 {
		t.Errorf("POST /v1/hi during the ShutdownDelay: %d, want 200", resp.StatusCode)
	}
	if err := testkit.Receive(t, done, 5*time.Second, "Run to return"); err != nil {
		t.Fatalf("Run = %v, want nil after a clean shutdown", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the gateway still accepts connections after Run returned")
	}
	// Shutdown closes the gateway's gRPC connections (REST calls' and
	// readiness'), which ctx's end no longer does.
	testkit.Eventually(t, 2*time.Second, "the gateway's gRPC connections to close after Run returned", func() bool {
		return b.srv.Stats().Open == 0
	})
}
