package gateway_test

import (
	"net/http"
	"testing"

	"google.golang.org/grpc/credentials"

	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/internal/testcerts"
	"github.com/rotorkit/rotor/server"
)

// TestTLSBackend runs REST calls through a gateway that dials a mutual-TLS
// rotor server through Config.TransportCredentials: with the right client
// credentials calls and readiness work; with a CA that does not sign the
// server's certificate, or without a client certificate, REST gets 503 with
// gRPC's UNAVAILABLE and /readyz is 503.
func TestTLSBackend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "rotor test CA")
	other := testcerts.NewCA(t, "other CA")
	caFile, otherFile := ca.WriteFile(t, dir, "ca.crt"), other.WriteFile(t, dir, "other.crt")
	certFile, keyFile := ca.Issue(t, testcerts.Options{Name: "server", Both: true}).WriteFiles(t, dir, "server")
	cliCert, cliKey := ca.Client(t, "gateway").WriteFiles(t, dir, "gateway")
	b := startBackend(t, "pod-tls", server.WithTLSFiles(certFile, keyFile, caFile))

	creds := func(ca, cert, key string) credentials.TransportCredentials {
		c, err := server.ClientTLS(ca, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	local, err := b.srv.LocalClientCredentials()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		creds credentials.TransportCredentials
		ok    bool
	}{
		{"mutual TLS", creds(caFile, cliCert, cliKey), true},
		{"same pod: LocalClientCredentials", local, true},
		{"gateway trusts another CA", creds(otherFile, cliCert, cliKey), false},
		{"gateway without a client certificate", creds(caFile, "", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, base := startGateway(t, b, gateway.Config{TransportCredentials: tt.creds})
			resp, body := do(t, nil, "POST", base+"/v1/hi", `{"to_who":"you"}`)
			ready, _ := do(t, nil, "GET", base+"/readyz", "")
			if tt.ok {
				if resp.StatusCode != http.StatusOK || ready.StatusCode != http.StatusOK {
					t.Fatalf("POST /v1/hi %d (%s), /readyz %d; want 200 and 200", resp.StatusCode, body, ready.StatusCode)
				}
				return
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("POST /v1/hi %d (%s), want 503", resp.StatusCode, body)
			}
			if e := parseError(t, body); *e.Code != 14 {
				t.Errorf("code %d, want 14 (UNAVAILABLE): %s", *e.Code, body)
			}
			if ready.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/readyz %d, want 503", ready.StatusCode)
			}
		})
	}
}
