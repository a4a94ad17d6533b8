package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// boundedHello is the example service with streams cut short, so that a
// fuzzed "count": 0 (stream until cancelled) costs milliseconds.
type boundedHello struct{ testkit.Hello }

func (s *boundedHello) HiStream(req *hellov1.HiStreamRequest, stream grpc.ServerStreamingServer[hellov1.HiStreamResponse]) error {
	req.Count = min(max(req.GetCount(), 1), 3)
	req.IntervalMs = 1
	return s.Hello.HiStream(req, stream)
}

// FuzzGateway sends random requests (method, target, one extra header line,
// body) through the Gateway's handler, backed by a real rotor server with
// the example service. Requests net/http itself would refuse are skipped.
// Invariants:
//
//   - no panic, and no 5xx of the Gateway's own making: only 502, 503 and
//     504, which report the backend;
//
//   - every response carries a well-formed X-Request-Id, the client's own
//     when it sent a well-formed one;
//
//   - every error response (but to HEAD) is a JSON object: grpc-gateway's
//     {"code", "message", "details"}, or a probe's {"status"};
//
//   - only the allowed headers reach the gRPC server as metadata.
//
//     go test -run '^$' -fuzz '^FuzzGateway$' -fuzztime 30s ./gateway
func FuzzGateway(f *testing.F) {
	b := startBackendFor(f, &boundedHello{testkit.Hello{Name: "pod-fuzz"}})
	gw, err := gateway.New(context.Background(), gateway.Config{
		Fn: hellov1.RegisterHelloHandlerFromEndpoint, Endpoint: b.addr, Logger: quiet, MaxBodyBytes: 64 << 10,
	})
	if err != nil {
		f.Fatal(err)
	}
	defer gw.Close()
	h := gw.Handler()

	forwarded := map[string]bool{"authorization": true, "traceparent": true, "tracestate": true, "x-request-id": true}
	// Set by gRPC or grpc-gateway themselves, whatever the request says.
	transport := map[string]bool{":authority": true, "content-type": true, "user-agent": true, "x-forwarded-for": true, "x-forwarded-host": true}

	f.Fuzz(func(t *testing.T, method, target, hname, hvalue string, body []byte) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: gw.test\r\n%s: %s\r\nContent-Length: %d\r\n\r\n%s", method, target, hname, hvalue, len(body), body)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil || !strings.HasPrefix(req.RequestURI, "/") {
			return // net/http answers 400 itself
		}
		req.RemoteAddr = "192.0.2.1:4711"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		sent := req.Header.Clone()
		b.md.take()

		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		code, out := w.Code, w.Body.Bytes()

		if code >= 500 && code != http.StatusBadGateway && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
			t.Errorf("%s %s: status %d; body %s", req.Method, req.RequestURI, code, out)
		}
		id := w.Header().Get(gateway.RequestIDHeader)
		if !wellFormedID(id) {
			t.Errorf("%s %s: X-Request-Id %q is not 1 to 128 visible ASCII characters", req.Method, req.RequestURI, id)
		}
		if sentID := sent.Get(gateway.RequestIDHeader); wellFormedID(sentID) && len(sent.Values(gateway.RequestIDHeader)) == 1 && id != sentID {
			t.Errorf("X-Request-Id %q answered with %q, want the client's own", sentID, id)
		}
		if code >= 400 && req.Method != http.MethodHead {
			var e map[string]any
			if err := json.Unmarshal(out, &e); err != nil {
				t.Errorf("%s %s: %d with a body that is not JSON (%v): %q", req.Method, req.RequestURI, code, err, out)
			} else if _, ok := e["status"]; !ok && (e["code"] == nil || e["message"] == nil) {
				t.Errorf("%s %s: %d with %s, want grpc-gateway's {code, message, details} or a probe's {status}", req.Method, req.RequestURI, code, out)
			}
		}
		for key := range b.md.take() {
			if !forwarded[key] && !transport[key] {
				t.Errorf("%s %s with header %q: metadata %q reached the gRPC server", req.Method, req.RequestURI, hname, key)
			}
		}
	})
}

func wellFormedID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	return !bytes.ContainsFunc([]byte(id), func(r rune) bool { return r < 0x21 || r > 0x7e })
}
