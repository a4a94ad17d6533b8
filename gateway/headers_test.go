package gateway_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rotorkit/rotor/gateway"
)

func TestForwardHeaders(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "pod-a")
	_, base := startGateway(t, b, gateway.Config{}) // DefaultForwardHeaders
	_, none := startGateway(t, b, gateway.Config{ForwardHeaders: []string{}})
	_, custom := startGateway(t, b, gateway.Config{ForwardHeaders: []string{"X-Tenant"}})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	t.Run("allow-list", func(t *testing.T) {
		resp, body := do(t, nil, "POST", base+"/v1/hi", `{}`,
			"X-Request-Id", "req-42", "Traceparent", tp, "Authorization", "Bearer t0ken",
			"X-Secret", "s3cret", "Cookie", "session=1", "Grpc-Metadata-X-Injected", "evil")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Request-Id"); got != "req-42" {
			t.Errorf("response X-Request-Id %q, want the client's req-42", got)
		}
		md := b.lastMD(t)
		for k, want := range map[string]string{"x-request-id": "req-42", "traceparent": tp, "authorization": "Bearer t0ken"} {
			if got := md.Get(k); !slices.Equal(got, []string{want}) {
				t.Errorf("metadata %s = %q, want exactly [%q]", k, got, want)
			}
		}
		for _, k := range []string{"x-secret", "cookie", "x-injected", "grpc-metadata-x-injected", "grpcgateway-cookie"} {
			if got := md.Get(k); len(got) > 0 {
				t.Errorf("metadata %s = %q reached the server; it is not in ForwardHeaders", k, got)
			}
		}
	})

	t.Run("generated request id", func(t *testing.T) {
		for _, sent := range []string{"", strings.Repeat("x", 200), "bad id with spaces"} {
			resp, _ := do(t, nil, "POST", base+"/v1/hi", `{}`, "X-Request-Id", sent)
			got := resp.Header.Get("X-Request-Id")
			if got == "" || got == sent {
				t.Errorf("sent X-Request-Id %q: response has %q, want a fresh id", sent, got)
			}
			if md := b.lastMD(t).Get("x-request-id"); !slices.Equal(md, []string{got}) {
				t.Errorf("metadata x-request-id %q, want [%q] as echoed", md, got)
			}
		}
		r1, _ := do(t, nil, "GET", base+"/healthz", "")
		r2, _ := do(t, nil, "GET", base+"/healthz", "")
		if a, b := r1.Header.Get("X-Request-Id"), r2.Header.Get("X-Request-Id"); a == b {
			t.Errorf("two requests got the same id %q", a)
		}
	})

	t.Run("empty list strips authorization", func(t *testing.T) {
		do(t, nil, "POST", none+"/v1/hi", `{}`, "Authorization", "Bearer t0ken", "Traceparent", tp)
		md := b.lastMD(t)
		if got := md.Get("authorization"); len(got) > 0 {
			t.Errorf("authorization %q reached the server with ForwardHeaders empty", got)
		}
		if got := md.Get("traceparent"); len(got) > 0 {
			t.Errorf("traceparent %q reached the server with ForwardHeaders empty", got)
		}
		if got := md.Get("x-request-id"); len(got) != 1 {
			t.Errorf("x-request-id %q, want one: it is always forwarded", got)
		}
	})

	t.Run("custom list", func(t *testing.T) {
		do(t, nil, "POST", custom+"/v1/hi", `{}`, "X-Tenant", "acme", "Authorization", "Bearer t0ken")
		md := b.lastMD(t)
		if got := md.Get("x-tenant"); !slices.Equal(got, []string{"acme"}) {
			t.Errorf("x-tenant %q, want [acme]", got)
		}
		if got := md.Get("authorization"); len(got) > 0 {
			t.Errorf("authorization %q reached the server; it is not listed", got)
		}
	})
}
