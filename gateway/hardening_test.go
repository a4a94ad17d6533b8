package gateway_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// TestSlowloris: a client that sends part of a header line and then trickles
// a byte every 100 ms is cut off once ReadHeaderTimeout has passed since its
// first byte, however steadily it trickles; a normal client is served
// meanwhile.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	const timeout, slack = time.Second, time.Second
	b := startBackend(t, "pod-a")
	_, base := startGateway(t, b, gateway.Config{ReadHeaderTimeout: timeout})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	begin := time.Now()
	if _, err := io.WriteString(c, "POST /v1/hi HTTP/1.1\r\nHost: gw\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	cut := make(chan error, 1)
	go func() {
		// Returns once the gateway closes the connection.
		_, err := io.Copy(io.Discard, c)
		cut <- err
	}()
	trickle := time.NewTicker(100 * time.Millisecond)
	defer trickle.Stop()
	deadline := time.After(timeout + slack)
	normal := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/v1/hi", "application/json", strings.NewReader(`{"to_who":"normal"}`))
		if err != nil {
			normal <- 0
			return
		}
		resp.Body.Close()
		normal <- resp.StatusCode
	}()
	for {
		select {
		case <-trickle.C:
			_, _ = c.Write([]byte("a")) // fails once the gateway has closed
			continue
		case <-deadline:
			t.Fatalf("a trickling client still connected %v after its first byte; ReadHeaderTimeout is %v", time.Since(begin), timeout)
		case err := <-cut:
			t.Logf("cut off after %v (%v)", time.Since(begin).Round(10*time.Millisecond), err)
		}
		break
	}
	if code := <-normal; code != http.StatusOK {
		t.Errorf("a normal client beside the slow one got %d, want 200", code)
	}
}

// TestMalformedGrpcTimeout: a Grpc-Timeout header that is not UTF-8 is the
// client's error, 400 INVALID_ARGUMENT, not a 500 from a JSON body that
// cannot quote it (found by FuzzGateway).
func TestMalformedGrpcTimeout(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	_, base := startGateway(t, b, gateway.Config{})
	resp, body := do(t, nil, "POST", base+"/v1/hi", `{}`, "Grpc-Timeout", "\xbf")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", resp.StatusCode, body)
	}
	if e := parseError(t, body); *e.Code != 3 || !strings.Contains(e.Message, "grpc-timeout") {
		t.Errorf("body %s, want code 3 (INVALID_ARGUMENT) naming grpc-timeout", body)
	}
}

// TestPublicPortServesNoAdmin: the REST port serves the API, the probes and
// the OpenAPI document, and nothing of the admin listener (rotation, stats,
// metrics) or of Go's debug handlers, whatever the method.
func TestPublicPortServesNoAdmin(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a", server.WithAdminHandler("GET /metrics", http.NotFoundHandler()))
	_, base := startGateway(t, b, gateway.Config{})
	if resp, body := do(t, nil, "POST", base+"/v1/hi", `{}`); resp.StatusCode != 200 {
		t.Fatalf("POST /v1/hi: %d %s; the REST port does not serve at all", resp.StatusCode, body)
	}
	for _, path := range []string{"/rotate", "/rotate?fraction=1", "/stats", "/metrics", "/debug/pprof/", "/debug/pprof/goroutine", "/debug/vars",
		"/v1/../rotate", "//rotate", "/grpc.health.v1.Health/Check", "/rotor.fairshare.v1.LoadService/GetLoad"} {
		for _, method := range []string{"GET", "POST"} {
			resp, body := do(t, nil, method, base+path, "")
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("%s %s on the REST port: %d %s; want a 4xx", method, path, resp.StatusCode, body)
			}
		}
	}
	if st := b.srv.Stats(); st.Draining != 0 {
		t.Errorf("%d connections draining after requests for /rotate on the REST port", st.Draining)
	}
}

// TestBackendRestart: when the gRPC server's port closes, the gateway answers
// 503 with gRPC's UNAVAILABLE in the grpc-gateway body and /readyz turns 503;
// once a server listens on the port again the gateway recovers by itself.
func TestBackendRestart(t *testing.T) {
	t.Parallel()
	first := startBackend(t, "pod-first")
	_, base := startGateway(t, first, gateway.Config{})
	if resp, body := do(t, nil, "POST", base+"/v1/hi", `{"to_who":"x"}`); resp.StatusCode != 200 || !strings.Contains(body, "pod-first") {
		t.Fatalf("before the outage: %d %s", resp.StatusCode, body)
	}

	if err := first.srv.Close(); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, nil, "POST", base+"/v1/hi", `{"to_who":"x"}`)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("backend port closed: %d %s; want 503", resp.StatusCode, body)
	}
	if e := parseError(t, body); *e.Code != 14 || e.Message == "" {
		t.Errorf("backend port closed: body %s; want code 14 (UNAVAILABLE) and a message", body)
	}
	testkit.Eventually(t, 5*time.Second, "/readyz 503 while the backend is down", func() bool {
		resp, _ := do(t, nil, "GET", base+"/readyz", "")
		return resp.StatusCode == http.StatusServiceUnavailable
	})

	// A new server on the same address.
	srv, err := server.New(server.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	hellov1.RegisterHelloServer(srv, &testkit.Hello{Name: "pod-second"})
	var lis net.Listener
	testkit.Eventually(t, 5*time.Second, "listening on "+first.addr+" again", func() bool {
		lis, err = net.Listen("tcp", first.addr)
		return err == nil || !errors.Is(err, syscall.EADDRINUSE)
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	// grpc-go reconnects after its backoff: 1 s, then 1.6 s, … with 20 % jitter.
	testkit.Eventually(t, 15*time.Second, "REST calls to reach the restarted server", func() bool {
		resp, body := do(t, nil, "POST", base+"/v1/hi", `{"to_who":"x"}`)
		return resp.StatusCode == 200 && strings.Contains(body, "pod-second")
	})
	testkit.Eventually(t, 5*time.Second, "/readyz 200 again", func() bool {
		resp, _ := do(t, nil, "GET", base+"/readyz", "")
		return resp.StatusCode == http.StatusOK
	})
}
