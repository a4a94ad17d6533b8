package gateway_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/server"
)

func TestREST(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	_, base := startGateway(t, b, gateway.Config{MaxBodyBytes: 1 << 10})
	big := `{"to_who":"` + strings.Repeat("x", 2<<10) + `"}`

	tests := []struct {
		name, method, path, body string
		chunked                  bool // send without Content-Length
		status                   int
		code                     int // grpc-gateway error code, for errors
	}{
		{name: "hi", method: "POST", path: "/v1/hi", body: `{"to_who":"you","message":"hello"}`, status: 200},
		{name: "malformed JSON", method: "POST", path: "/v1/hi", body: `{"to_who":`, status: 400, code: 3},
		{name: "unknown field type", method: "POST", path: "/v1/hi", body: `{"to_who":7}`, status: 400, code: 3},
		{name: "trailing object", method: "POST", path: "/v1/hi", body: `{"toWho":"a"}{"x":1}`, status: 400, code: 3},
		{name: "trailing garbage", method: "POST", path: "/v1/hi", body: `{"toWho":"a"} ]`, status: 400, code: 3},
		{name: "trailing on a stream", method: "POST", path: "/v1/hi/stream", body: `{"toWho":"a","count":1} 7`, status: 400, code: 3},
		{name: "trailing white space", method: "POST", path: "/v1/hi", body: "{\"toWho\":\"a\"}  \r\n\t", status: 200},
		{name: "unknown field ignored", method: "POST", path: "/v1/hi", body: `{"toWho":"a","nope":1}`, status: 200}, // grpc-gateway's default (README)
		{name: "unknown path", method: "POST", path: "/v1/nope", body: `{}`, status: 404, code: 5},
		{name: "wrong method", method: "GET", path: "/v1/hi", status: 405, code: 12},
		{name: "body over limit", method: "POST", path: "/v1/hi", body: big, status: 413, code: 8},
		{name: "chunked body over limit", method: "POST", path: "/v1/hi", body: big, chunked: true, status: 413, code: 8},
		{name: "healthz", method: "GET", path: "/healthz", status: 200},
		{name: "healthz wrong method", method: "POST", path: "/healthz", body: "{}", status: 405, code: 12},
		{name: "no openapi configured", method: "GET", path: "/openapi.json", status: 404, code: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body == "" {
				req.Body, req.ContentLength = http.NoBody, 0
			}
			if tc.chunked {
				req.ContentLength = -1
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == 405 && tc.path == "/v1/hi" && resp.Header.Get("Allow") != "" {
				t.Errorf("Allow %q without an OpenAPI document; want none (the mux does not tell)", resp.Header.Get("Allow"))
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			body := string(raw)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", tc.method, tc.path, resp.StatusCode, tc.status, body)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id in the response")
			}
			if tc.status >= 400 {
				if e := parseError(t, body); *e.Code != tc.code {
					t.Errorf("error code %d, want %d (%s)", *e.Code, tc.code, body)
				}
				return
			}
			if tc.path == "/v1/hi" {
				// The call's gRPC response headers, as grpc-gateway
				// maps them by default (README).
				if got := resp.Header.Get("Grpc-Metadata-Content-Type"); got != "application/grpc" {
					t.Errorf("Grpc-Metadata-Content-Type %q, want application/grpc", got)
				}
				var hi struct{ FromWho string }
				if err := json.Unmarshal([]byte(body), &hi); err != nil || hi.FromWho != "pod-a" {
					t.Errorf("body %s does not name the instance pod-a (%v)", body, err)
				}
			}
		})
	}
}

func TestBackendUnavailable(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	_, base := startGateway(t, nil, gateway.Config{Endpoint: dead})

	resp, body := do(t, nil, "POST", base+"/v1/hi", `{"to_who":"you"}`)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %s", resp.StatusCode, body)
	}
	e := parseError(t, body)
	if *e.Code != 14 {
		t.Errorf("code %d, want 14 (UNAVAILABLE)", *e.Code)
	}
	// grpc-go's message names the backend and the dial error: for the log,
	// not for REST clients.
	_, port, _ := net.SplitHostPort(dead)
	for _, leak := range []string{"127.0.0.1", port, "dial", "refused", "transport"} {
		if strings.Contains(body, leak) {
			t.Errorf("503 body %s reveals %q", body, leak)
		}
	}
	if resp, _ := do(t, nil, "GET", base+"/readyz", ""); resp.StatusCode != 503 {
		t.Errorf("/readyz %d, want 503 without a backend", resp.StatusCode)
	}
	if resp, _ := do(t, nil, "GET", base+"/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz %d, want 200: liveness must not follow the backend", resp.StatusCode)
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../proto/gen/hello/v1/hello.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	b := startBackend(t, "pod-a")
	_, base := startGateway(t, b, gateway.Config{OpenAPI: doc})
	resp, body := do(t, nil, "GET", base+gateway.OpenAPIPath, "")
	if resp.StatusCode != 200 || body != string(doc) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s, %d bytes; want 200 application/json with the document", gateway.OpenAPIPath, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if resp, _ := do(t, nil, "DELETE", base+gateway.OpenAPIPath, ""); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE %s: %d, Allow %q; want 405, Allow GET, HEAD", gateway.OpenAPIPath, resp.StatusCode, resp.Header.Get("Allow"))
	}
	// The document's paths give a REST route's 405 its Allow header.
	for _, path := range []string{"/v1/hi", "/v1/hi/stream"} {
		if resp, _ := do(t, nil, "GET", base+path, ""); resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d, Allow %q; want 405, Allow POST", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// TestCurl runs the real curl binary against the gateway.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not on PATH")
	}
	b := startBackend(t, "pod-curl")
	_, base := startGateway(t, b, gateway.Config{})
	run := func(args ...string) string {
		out, err := exec.Command(curl, append([]string{"-sS", "-i", "--max-time", "5"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("-H", "Content-Type: application/json", "-H", "X-Request-Id: curl-1",
		"-d", `{"to_who":"curl","message":"hi"}`, base+"/v1/hi")
	for _, want := range []string{"HTTP/1.1 200", `"fromWho":"pod-curl"`, "X-Request-Id: curl-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("curl POST /v1/hi: no %q in\n%s", want, out)
		}
	}
	if out := run(base + "/v1/hi"); !strings.Contains(out, "HTTP/1.1 405") {
		t.Errorf("curl GET /v1/hi: want 405, got\n%s", out)
	}
	if out := run("-d", `{"to_who":`, base+"/v1/hi"); !strings.Contains(out, "HTTP/1.1 400") {
		t.Errorf("curl malformed JSON: want 400, got\n%s", out)
	}
}

// TestNoLimits serves with every optional limit turned off: server.Off must
// mean "no deadline", not a deadline in the past.
func TestNoLimits(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	_, base := startGateway(t, b, gateway.Config{ReadTimeout: server.Off, WriteTimeout: server.Off,
		IdleTimeout: server.Off, MaxConnectionAge: server.Off})
	for range 3 {
		if resp, body := do(t, nil, "POST", base+"/v1/hi", `{"to_who":"you"}`); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if n := countStream(t, base, 3, 10); n != 3 {
		t.Errorf("got %d of 3 stream messages", n)
	}
}
