package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// countStream posts a HiStream request and counts the messages that arrive.
func countStream(t *testing.T, url string, count, intervalMs int) int {
	t.Helper()
	resp, err := http.Post(url+"/v1/hi/stream", "application/json",
		strings.NewReader(fmt.Sprintf(`{"to_who":"s","count":%d,"interval_ms":%d}`, count, intervalMs)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `{"result":`) {
			n++
		}
	}
	return n
}

// TestStreamOutlivesTimeouts streams for 1.5 s through a gateway whose
// ReadTimeout and WriteTimeout are 1 s: neither may cut the stream. The
// "net/http WriteTimeout" case shows why the gateway does not use
// http.Server.WriteTimeout: it bounds the whole response and cuts the stream.
func TestStreamOutlivesTimeouts(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	const msgs, interval = 15, 100 // 1.5 s

	t.Run("gateway", func(t *testing.T) {
		t.Parallel()
		_, base := startGateway(t, b, gateway.Config{ReadTimeout: time.Second, WriteTimeout: time.Second})
		if n := countStream(t, base, msgs, interval); n != msgs {
			t.Errorf("got %d of %d stream messages", n, msgs)
		}
	})
	t.Run("net/http WriteTimeout", func(t *testing.T) {
		t.Parallel()
		mux := runtime.NewServeMux()
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := hellov1.RegisterHelloHandlerFromEndpoint(ctx, mux, b.addr, opts); err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: mux, WriteTimeout: 500 * time.Millisecond}
		go func() { _ = hs.Serve(lis) }()
		defer hs.Close()
		if n := countStream(t, "http://"+lis.Addr().String(), msgs, interval); n >= msgs {
			t.Errorf("got all %d messages: net/http's WriteTimeout no longer cuts streams; boundWrites may be replaced by it", n)
		}
	})
}

// TestSlowBody sends headers and part of a body, then stalls: the gateway
// answers 408 after ReadTimeout.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	_, base := startGateway(t, b, gateway.Config{ReadTimeout: time.Second})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/hi HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"to_who\":")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408; body %s", resp.StatusCode, body)
	}
	if e := parseError(t, string(body)); *e.Code != 4 {
		t.Errorf("code %d, want 4 (DEADLINE_EXCEEDED)", *e.Code)
	}
}

// TestStalledReader asks for an endless stream of large messages and never
// reads it: after WriteTimeout the gateway gives up and the gRPC stream ends.
func TestStalledReader(t *testing.T) {
	t.Parallel()
	b, ended := streamEndsBackend(t)
	_, base := startGateway(t, b, gateway.Config{WriteTimeout: time.Second})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	body := fmt.Sprintf(`{"to_who":"%s","count":0,"interval_ms":1}`, strings.Repeat("x", 64<<10))
	fmt.Fprintf(c, "POST /v1/hi/stream HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	t.Logf("the stream ended: %v", testkit.Receive(t, ended, 10*time.Second, "the stream to a client that does not read to end (WriteTimeout is 1s)"))
}

// streamEndsBackend starts a backend that reports how each stream ended.
func streamEndsBackend(t *testing.T) (*backend, <-chan error) {
	ended := make(chan error, 1)
	b := startBackend(t, "pod-a", server.WithStreamInterceptors(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			ended <- err
			return err
		}))
	return b, ended
}

// TestHTTP2StalledReader is TestStalledReader over HTTP/2: the client takes
// the response headers and never reads the body, and after WriteTimeout the
// gateway gives up and the gRPC stream ends.
func TestHTTP2StalledReader(t *testing.T) {
	t.Parallel()
	b, ended := streamEndsBackend(t)
	gw, _ := startGateway(t, b, gateway.Config{WriteTimeout: time.Second})
	hs := httptest.NewUnstartedServer(gw.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(hs.Close)
	body := fmt.Sprintf(`{"to_who":"%s","count":0,"interval_ms":1}`, strings.Repeat("x", 64<<10))
	resp, err := hs.Client().Post(hs.URL+"/v1/hi/stream", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	t.Logf("the stream ended: %v", testkit.Receive(t, ended, 15*time.Second, "the stream to an HTTP/2 client that does not read to end (WriteTimeout is 1s)"))
}

// TestHTTP2WriteTimeout mounts the Handler on an HTTP/2 (TLS) server, where
// a write deadline is a timer that resets the stream when it fires: with a
// 1 s WriteTimeout, a call that takes 1.5 s before its first byte and a
// stream that is quiet for 1.5 s between messages must both complete.
func TestHTTP2WriteTimeout(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	gw, _ := startGateway(t, b, gateway.Config{WriteTimeout: time.Second})
	if err := gw.Mux().HandlePath(http.MethodGet, "/slow", func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		time.Sleep(1500 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(gw.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(hs.Close)
	c := hs.Client()

	resp, body := do(t, c, http.MethodGet, hs.URL+"/slow", "")
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != http.StatusOK || body != "done" {
		t.Errorf("slow call over HTTP/2: %d %q, want 200 done", resp.StatusCode, body)
	}

	resp, body = do(t, c, http.MethodPost, hs.URL+"/v1/hi/stream", `{"to_who":"s","count":2,"interval_ms":1500}`)
	if n := strings.Count(body, `{"result":`); resp.StatusCode != http.StatusOK || n != 2 {
		t.Errorf("quiet stream over HTTP/2: %d with %d of 2 messages:\n%s", resp.StatusCode, n, body)
	}
}
