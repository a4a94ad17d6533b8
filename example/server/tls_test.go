package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/testcerts"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

// TestMutualTLS runs the example server with mutual TLS set through the
// environment (ROTOR_TLS_*, the flags' equivalents): gRPC clients need a
// certificate of the client CA, and the in-process REST gateway reaches its
// server over the same mutual TLS.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caFile, certFile, keyFile := testcerts.PodFiles(t, dir, "hello")
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

// TestFairShareOverMutualTLS runs the example server with mutual TLS and
// fair share, its peer name resolving to itself: its load queries must pass
// the mutual TLS handshake (its own certificate as the client's, the name
// localhost checked against it), and its LoadService counts them as OK.
// Without a CA to trust the peers by, it refuses to start and says what to
// set.
func TestFairShareOverMutualTLS(t *testing.T) {
	_, caFile, certFile, keyFile := testcerts.PodFiles(t, t.TempDir(), "hello")
	t.Setenv("ROTOR_TLS_CERT", certFile)
	t.Setenv("ROTOR_TLS_KEY", keyFile)

	t.Run("no peer CA", func(t *testing.T) {
		out, err := exec.Command(binary, "-grpc-addr", "127.0.0.1:0", "-http-addr", "", "-admin-addr", "",
			"-peer-dns", "localhost", "-fair-share").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "-peer-tls-ca") {
			t.Errorf("fair share over TLS without a peer CA: err %v, output %q; want a failure naming -peer-tls-ca", err, out)
		}
	})

	t.Setenv("ROTOR_TLS_CLIENT_CA", caFile)
	// Two pods on one port: this one on 127.0.0.1, a peer on 127.0.0.2
	// whose -peer-dns (localhost) finds this one. A pod does not ask
	// itself, so the peer's mutual-TLS load queries are what this one
	// answers.
	p := startServer(t, "-peer-dns", "localhost", "-peer-interval", "200ms", "-fair-share")
	_, port, _ := net.SplitHostPort(p.grpc)
	peer := exec.Command(binary, "-grpc-addr", "127.0.0.2:"+port, "-http-addr", "", "-admin-addr", "",
		"-peer-dns", "localhost", "-peer-interval", "200ms", "-fair-share")
	testkit.Start(t, "peer", peer)
	loadOK := map[string]string{"grpc_service": "rotor.fairshare.v1.LoadService", "grpc_code": "OK"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := metricValue(t, "http://"+p.admin+"/metrics", "grpc_server_handled_total", loadOK)
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no load query answered OK within 10 s (grpc_server_handled_total%v = %v)", loadOK, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue scrapes url in the Prometheus text format and sums the
// counters and gauges of family name whose labels include labels (0 when
// none do).
func metricValue(t *testing.T, url, name string, labels map[string]string) float64 {
	t.Helper()
	return testkit.Sum(testkit.Scrape(t, url), name, labels)
}
