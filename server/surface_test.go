package server_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/testkit"
	"github.com/rotorkit/rotor/server"
)

// TestGRPCPortServesNoAdmin: the admin endpoints live on the admin listener
// only. On the gRPC port, neither an HTTP/1.1 request nor an HTTP/2 one
// (plain or with gRPC's content type) for /rotate, /stats or /metrics gets a
// 2xx or rotates anything.
func TestGRPCPortServesNoAdmin(t *testing.T) {
	ev := newEvents()
	addr, srv := start(t, svc("a"), server.WithObserver(ev), server.WithAdminHandler("GET /metrics", http.NotFoundHandler()))
	plainH2 := new(http.Protocols)
	plainH2.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: plainH2}}
	spokeH2 := 0
	for _, c := range []struct {
		name   string
		client *http.Client
		ctype  string
	}{{"h2c", h2c, ""}, {"h2c as gRPC", h2c, "application/grpc"}} {
		for _, path := range []string{"/rotate", "/stats", "/metrics"} {
			req, err := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := c.client.Do(req)
			if err != nil {
				continue // refused outright
			}
			resp.Body.Close()
			if resp.ProtoMajor == 2 {
				spokeH2++
			}
			if resp.StatusCode/100 == 2 && resp.Header.Get("Grpc-Status") == "" && resp.Trailer.Get("Grpc-Status") == "" {
				t.Errorf("%s POST %s on the gRPC port: %d without a gRPC status", c.name, path, resp.StatusCode)
			}
			if s := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status"); s == "0" {
				t.Errorf("%s POST %s on the gRPC port: gRPC status OK", c.name, path)
			}
		}
	}
	if spokeH2 == 0 {
		t.Error("no HTTP/2 request got an answer: the test would pass without reaching the server")
	}
	// HTTP/1.1: grpc-go answers with its HTTP/2 SETTINGS, which is no
	// HTTP/1.1 response.
	for _, path := range []string{"/rotate", "/stats", "/metrics"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: rotor\r\nContent-Length: 0\r\n\r\n", path)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			t.Errorf("HTTP/1.1 POST %s on the gRPC port: %s", path, resp.Status)
		}
		c.Close()
	}
	if n := ev.drained("admin"); n != 0 {
		t.Errorf("after admin requests on the gRPC port: %d admin rotations; want none", n)
	}
	// The refused connections may still be closing (counted as draining)
	// for a moment; none may stay once the client lets go of its own.
	h2c.CloseIdleConnections()
	testkit.Eventually(t, 5*time.Second, "no connection left draining", func() bool { return srv.Stats().Draining == 0 })
}
