package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/internal/testcerts"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

var quietLog = slog.New(slog.DiscardHandler)

// served counts the calls that reached the service, to show that a client
// whose handshake failed was served nothing.
type served struct{ n atomic.Int64 }

func (c *served) option() server.Option {
	return server.WithUnaryInterceptors(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		c.n.Add(1)
		return h(ctx, req)
	})
}

// hiWith calls Hi once on a new connection made with creds and returns the
// certificate the server presented.
func hiWith(t *testing.T, addr string, creds credentials.TransportCredentials) (*hellov1.HiResponse, *peer.Peer, error) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p peer.Peer
	resp, err := hellov1.NewHelloClient(cc).Hi(ctx, &hellov1.HiRequest{ToWho: "t"}, grpc.Peer(&p))
	return resp, &p, err
}

func serverSerial(t *testing.T, p *peer.Peer) string {
	t.Helper()
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("peer %v: no TLS certificate", p.AuthInfo)
	}
	return info.State.PeerCertificates[0].SerialNumber.String()
}

func clientTLS(t *testing.T, caFile, certFile, keyFile string) credentials.TransportCredentials {
	t.Helper()
	c, err := server.ClientTLS(caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLS runs each case against a server of its own: TLS and mutual TLS
// work, and every client that should be refused fails its handshake with
// an error that says why, and is served nothing.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "rotor test CA")
	other := testcerts.NewCA(t, "some other CA")
	caFile := ca.WriteFile(t, dir, "ca.crt")
	otherFile := other.WriteFile(t, dir, "other.crt")
	certFile, keyFile := ca.Server(t, "server").WriteFiles(t, dir, "server")
	expCert, expKey := ca.Issue(t, testcerts.Options{Name: "expired", NotAfter: time.Now().Add(-time.Minute)}).WriteFiles(t, dir, "expired")
	cliCert, cliKey := ca.Client(t, "client").WriteFiles(t, dir, "client")
	strangerCert, strangerKey := other.Client(t, "stranger").WriteFiles(t, dir, "stranger")

	ownServerCreds, err := server.ServerTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		server   server.Option
		client   credentials.TransportCredentials
		wantErrs []string // one of them in the error; none: the call succeeds
	}{
		{"TLS", server.WithTLSFiles(certFile, keyFile, ""), clientTLS(t, caFile, "", ""), nil},
		{"mutual TLS", server.WithTLSFiles(certFile, keyFile, caFile), clientTLS(t, caFile, cliCert, cliKey), nil},
		{"ServerTLS as a grpc.ServerOption", server.WithGRPCOptions(grpc.Creds(ownServerCreds)), clientTLS(t, caFile, cliCert, cliKey), nil},
		{"ServerTLS requires the client certificate", server.WithGRPCOptions(grpc.Creds(ownServerCreds)), clientTLS(t, caFile, "", ""),
			[]string{"certificate required", "broken pipe", "connection reset by peer"}},
		{"TLS config", server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{ca.Server(t, "cfg").TLS(t)}}), clientTLS(t, caFile, "", ""), nil},
		{"client trusts another CA", server.WithTLSFiles(certFile, keyFile, ""), clientTLS(t, otherFile, "", ""),
			[]string{"certificate signed by unknown authority"}},
		{"expired server certificate", server.WithTLSFiles(expCert, expKey, ""), clientTLS(t, caFile, "", ""),
			[]string{"certificate has expired"}},
		// Under TLS 1.3 the client's handshake is over before the server
		// judges its certificate, so the client sees the server's alert or,
		// when its first write loses the race with the close, a broken pipe.
		{"mutual TLS, client without certificate", server.WithTLSFiles(certFile, keyFile, caFile), clientTLS(t, caFile, "", ""),
			[]string{"certificate required", "broken pipe", "connection reset by peer"}},
		{"mutual TLS, client certificate of another CA", server.WithTLSFiles(certFile, keyFile, caFile), clientTLS(t, caFile, strangerCert, strangerKey),
			[]string{"unknown certificate authority", "broken pipe", "connection reset by peer"}},
		{"plaintext client", server.WithTLSFiles(certFile, keyFile, ""), insecure.NewCredentials(),
			[]string{"error reading server preface", "broken pipe", "connection reset by peer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls served
			addr, _ := start(t, svc("a"), tt.server, calls.option(), server.WithLogger(quietLog))
			_, _, err := hiWith(t, addr, tt.client)
			if tt.wantErrs == nil {
				if err != nil {
					t.Fatalf("Hi: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Hi succeeded; want a failed handshake")
			}
			if status.Code(err) != codes.Unavailable {
				t.Errorf("code %v, want Unavailable", status.Code(err))
			}
			found := false
			for _, w := range tt.wantErrs {
				found = found || strings.Contains(err.Error(), w)
			}
			if !found {
				t.Errorf("error %q says none of %q", err, tt.wantErrs)
			}
			if n := calls.n.Load(); n != 0 {
				t.Errorf("the service served %d calls to a client that failed its handshake", n)
			}
		})
	}
}

// TestTLSReload replaces the certificate files under a running server: new
// connections get the new certificate, the open one keeps working with the
// old, and a half-written update (a certificate without its key) keeps the
// last good pair in service until the key arrives.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "rotor test CA")
	caFile := ca.WriteFile(t, dir, "ca.crt")
	first := ca.Server(t, "first")
	certFile, keyFile := first.WriteFiles(t, dir, "tls")
	addr, _ := start(t, svc("a"), server.WithTLSFiles(certFile, keyFile, ""), server.WithLogger(quietLog))
	creds := clientTLS(t, caFile, "", "")

	// One long-lived connection, opened with the first certificate.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	old := hellov1.NewHelloClient(cc)
	oldHi := func() string {
		t.Helper()
		var p peer.Peer
		if _, err := old.Hi(context.Background(), &hellov1.HiRequest{}, grpc.Peer(&p)); err != nil {
			t.Fatalf("Hi on the connection opened before the reload: %v", err)
		}
		return serverSerial(t, &p) + " " + p.LocalAddr.String()
	}
	before := oldHi()
	newConnSerial := func() string {
		t.Helper()
		_, p, err := hiWith(t, addr, creds)
		if err != nil {
			t.Fatalf("Hi on a new connection: %v", err)
		}
		return serverSerial(t, p)
	}
	if got, want := newConnSerial(), first.Cert.SerialNumber.String(); got != want {
		t.Fatalf("serial %s, want the first certificate's %s", got, want)
	}

	second := ca.Server(t, "second")
	second.WriteFiles(t, dir, "tls")
	if got, want := newConnSerial(), second.Cert.SerialNumber.String(); got != want {
		t.Errorf("after the files changed, a new connection got serial %s, want the second certificate's %s", got, want)
	}
	if after := oldHi(); after != before {
		t.Errorf("the old connection changed: %s, then %s", before, after)
	}

	// A certificate whose key is not there yet: keep serving the second.
	third := ca.Server(t, "third")
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), third.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := newConnSerial(), second.Cert.SerialNumber.String(); got != want {
		t.Errorf("with a mismatched key, serial %s, want the last good (second) %s", got, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := newConnSerial(), third.Cert.SerialNumber.String(); got != want {
		t.Errorf("once the key arrived, serial %s, want the third certificate's %s", got, want)
	}
}

// TestTLSGoAway: under TLS (WithTLSFiles) the kit writes its GOAWAY into
// the HTTP/2 stream inside TLS (its frame writer sits above kitCreds). A
// connection sent GOAWAY while
// its handshake is still under way (admission at accept sends a client on
// that early) gets it once the handshake is done; a connection that serves
// gets it at once. Either way the client's calls all succeed, its next
// call goes out on a new connection, and the old one closes as rotated.
func TestTLSGoAway(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "rotor test CA")
	caFile := ca.WriteFile(t, dir, "ca.crt")
	certFile, keyFile := ca.Server(t, "server").WriteFiles(t, dir, "server")
	ev := newEvents()
	// A grace longer than the test: a connection whose GOAWAY did not
	// reach its client is not closed under it.
	cfg := noAge()
	cfg.MaxConnectionAgeGrace = 30 * time.Second
	addr, srv := start(t, svc("a"), server.WithConfig(cfg), server.WithTLSFiles(certFile, keyFile, ""), server.WithObserver(ev), server.WithLogger(quietLog))

	// The dialer holds the first connection, accepted but before its
	// handshake, until the test has sent it GOAWAY; it keeps the client's
	// local address of each connection.
	var mu sync.Mutex
	var conns []string
	dialled, release := make(chan struct{}), make(chan struct{})
	dialer := func(ctx context.Context, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		conns = append(conns, c.LocalAddr().String())
		n := len(conns)
		mu.Unlock()
		if n > 1 {
			return c, nil
		}
		close(dialled)
		select {
		case <-release:
			return c, nil
		case <-ctx.Done():
			c.Close()
			return nil, ctx.Err()
		}
	}
	dialledConns := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(conns)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(clientTLS(t, caFile, "", "")), grpc.WithContextDialer(dialer))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hello := hellov1.NewHelloClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hi := func() (string, error) { // and the client's local address of the call's connection
		var p peer.Peer
		if _, err := hello.Hi(ctx, &hellov1.HiRequest{ToWho: "t"}, grpc.Peer(&p)); err != nil {
			return "", err
		}
		return p.LocalAddr.String(), nil
	}
	// rotate rotates the one open connection; with Spread Off the GOAWAY
	// is sent (or, in the handshake, held for it) before Rotate returns,
	// so the observer has counted it: n for Rotate so far.
	rotate := func(n int) {
		t.Helper()
		res, err := srv.Rotate(ctx, server.Rotation{MinAge: server.Off, Spread: server.Off})
		if err != nil || res.Rotated != 1 {
			t.Fatalf("Rotate: %+v, %v; want 1 connection rotated", res, err)
		}
		if got := ev.drained("api"); got != n {
			t.Errorf("%d connections sent GOAWAY for Rotate after Rotate number %d; want %d", got, n, n)
		}
	}
	// callOnNewest makes a call, checks that it went out on the n-th
	// connection dialled (the GOAWAY reached the client, which dialled
	// again) and waits until the n−1 connections before it have closed as
	// rotated.
	callOnNewest := func(n int, what string) string {
		t.Helper()
		local, err := hi()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if c := dialledConns(); len(c) != n || local != c[n-1] {
			t.Fatalf("%s went out on %s, of the connections dialled %v; want connection %d: the GOAWAY did not reach the client", what, local, c, n)
		}
		ev.waitFor(t, 5*time.Second, fmt.Sprintf("%d connections to close as rotated", n-1), func() bool { return ev.closedWith("api") == n-1 })
		return local
	}

	// In the handshake: the first call dials, the server accepts, the
	// GOAWAY waits for the handshake. The call itself may be served on the
	// first connection (it went out before the client read the GOAWAY,
	// and the grace lets it finish) or on the next.
	firstErr := make(chan error, 1)
	go func() {
		_, err := hi()
		firstErr <- err
	}()
	<-dialled
	ev.waitFor(t, 5*time.Second, "the server to accept the connection", func() bool { return ev.opens() == 1 })
	rotate(1)
	close(release)
	if err := <-firstErr; err != nil {
		t.Fatalf("the first call, on a connection sent GOAWAY in its handshake: %v", err)
	}
	second := callOnNewest(2, "the call after the GOAWAY sent in the handshake")

	// Serving: the client leaves Ready once it has read the GOAWAY (a
	// call made before that would be served on the old connection); its
	// next call goes out on a new one.
	rotate(2)
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if !cc.WaitForStateChange(wctx, connectivity.Ready) {
		t.Fatalf("5 s after Rotate the client is still Ready on the rotated connection %s: the GOAWAY did not reach it", second)
	}
	callOnNewest(3, "the call after the second Rotate")
}

// TestTLSClientCARotation reloads the client CA file too: a client of the
// new CA is refused before and accepted after.
func TestTLSClientCARotation(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "server CA")
	oldClients, newClients := testcerts.NewCA(t, "old client CA"), testcerts.NewCA(t, "new client CA")
	caFile := ca.WriteFile(t, dir, "ca.crt")
	certFile, keyFile := ca.Server(t, "server").WriteFiles(t, dir, "server")
	clientCAFile := oldClients.WriteFile(t, dir, "clients.crt")
	cliCert, cliKey := newClients.Client(t, "client").WriteFiles(t, dir, "client")
	addr, _ := start(t, svc("a"), server.WithTLSFiles(certFile, keyFile, clientCAFile), server.WithLogger(quietLog))
	creds := clientTLS(t, caFile, cliCert, cliKey)
	if _, _, err := hiWith(t, addr, creds); err == nil {
		t.Fatal("a client of a CA the server does not trust yet was served")
	}
	newClients.WriteFile(t, dir, "clients.crt")
	if _, _, err := hiWith(t, addr, creds); err != nil {
		t.Fatalf("after the client CA file changed: %v", err)
	}
}

// TestLocalClientCredentials: an in-process client (the same-pod gateway)
// reaches its own TLS and mutual-TLS server without a CA of its own, and
// trusts nothing but that server's certificate.
func TestLocalClientCredentials(t *testing.T) {
	dir := t.TempDir()
	ca, caFile, certFile, keyFile := testcerts.PodFiles(t, dir, "server")
	serverOnlyCert, serverOnlyKey := ca.Server(t, "server-only").WriteFiles(t, dir, "server-only")

	for _, clientCA := range []string{"", caFile} {
		addr, srv := start(t, svc("a"), server.WithTLSFiles(certFile, keyFile, clientCA), server.WithLogger(quietLog))
		creds, err := srv.LocalClientCredentials()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := hiWith(t, addr, creds); err != nil {
			t.Errorf("client CA %q: Hi with LocalClientCredentials: %v", clientCA, err)
		}
	}

	// Another server with a certificate of the same CA is not trusted.
	_, mine := start(t, svc("a"), server.WithTLSFiles(certFile, keyFile, ""), server.WithLogger(quietLog))
	otherAddr, _ := start(t, svc("b"), server.WithTLSFiles(serverOnlyCert, serverOnlyKey, ""), server.WithLogger(quietLog))
	creds, err := mine.LocalClientCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := hiWith(t, otherAddr, creds); err == nil || !strings.Contains(err.Error(), "other than its own") {
		t.Errorf("LocalClientCredentials against another server: %v; want a refusal", err)
	}

	// Under mutual TLS the server's certificate must pass its own client
	// check; one made for server authentication only does not.
	_, strict := start(t, svc("a"), server.WithTLSFiles(serverOnlyCert, serverOnlyKey, caFile), server.WithLogger(quietLog))
	if _, err := strict.LocalClientCredentials(); err == nil || !strings.Contains(err.Error(), "client") {
		t.Errorf("LocalClientCredentials with a server-auth-only certificate under mutual TLS: %v; want an error", err)
	}

	plain, err := server.New()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := plain.LocalClientCredentials(); err != nil || c.Info().SecurityProtocol != "insecure" {
		t.Errorf("plaintext server: %v, %v; want insecure credentials", c, err)
	}
}

func TestTLSOptionErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "rotor test CA")
	certFile, keyFile := ca.Server(t, "server").WriteFiles(t, dir, "server")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []server.Option
		want string // in the error
	}{
		{"no key", []server.Option{server.WithTLSFiles(certFile, "", "")}, "WithTLSFiles"},
		{"missing file", []server.Option{server.WithTLSFiles(filepath.Join(dir, "nope.crt"), keyFile, "")}, "nope.crt"},
		{"bad client CA", []server.Option{server.WithTLSFiles(certFile, keyFile, garbage)}, "garbage.pem"},
		{"nil config", []server.Option{server.WithTLSConfig(nil)}, "WithTLSConfig = nil"},
		{"config without certificate", []server.Option{server.WithTLSConfig(&tls.Config{})}, "without certificates"},
		{"both", []server.Option{server.WithTLSFiles(certFile, keyFile, ""), server.WithTLSConfig(&tls.Config{})}, "one of WithTLSFiles and WithTLSConfig"},
		{"plaintext fair share", []server.Option{server.WithTLSFiles(certFile, keyFile, ""), server.WithPeerDNS("peers", 0), server.WithFairShare(server.FairShare{})}, "FairShare.DialOptions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := server.New(tt.opts...)
			var ce *server.ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v; want a ConfigError mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := server.ClientTLS("", certFile, ""); err == nil {
		t.Error("ClientTLS with a certificate and no key: no error")
	}
	if _, err := server.ClientTLS(garbage, "", ""); err == nil || !strings.Contains(err.Error(), "garbage.pem") {
		t.Errorf("ClientTLS with a CA file that is not PEM: %v", err)
	}
	if _, err := server.ServerTLS(certFile, keyFile, ""); err != nil {
		t.Errorf("ServerTLS: %v", err)
	}
}
