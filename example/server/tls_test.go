package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/testcerts"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// TestMutualTLS runs the example server with mutual TLS set through the
// environment (ROTOR_TLS_*, the flags' equivalents): gRPC clients need a
// certificate of the client CA, and the in-process REST gateway reaches its
// server over the same mutual TLS.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "example CA")
	caFile := ca.WriteFile(t, dir, "ca.crt")
	certFile, keyFile := ca.Issue(t, testcerts.Options{Name: "hello", Both: true}).WriteFiles(t, dir, "tls")
	cliCert, cliKey := ca.Client(t, "client").WriteFiles(t, dir, "client")
	t.Setenv("ROTOR_TLS_CERT", certFile)
	t.Setenv("ROTOR_TLS_KEY", keyFile)
	t.Setenv("ROTOR_TLS_CLIENT_CA", caFile)
	p := startServer(t, "-max-connections", "100")

	resp, err := http.Post("http://"+p.http+"/v1/hi", "application/json", strings.NewReader(`{"toWho":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "pod-under-test") {
		t.Fatalf("REST through the gateway: %d %s; want 200 from pod-under-test", resp.StatusCode, body)
	}

	hi := func(creds credentials.TransportCredentials) error {
		cc, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = hellov1.NewHelloClient(cc).Hi(ctx, &hellov1.HiRequest{})
		return err
	}
	withCert, err := server.ClientTLS(caFile, cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := hi(withCert); err != nil {
		t.Errorf("gRPC with a client certificate: %v", err)
	}
	withoutCert, err := server.ClientTLS(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := hi(withoutCert); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC without a client certificate: %v; want Unavailable", err)
	}
	if err := hi(insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext gRPC: %v; want Unavailable", err)
	}
}
