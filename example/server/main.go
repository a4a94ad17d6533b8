// Command server is the article's Hello server on rotor: gRPC on -grpc-addr
// with connection rotation, health and reflection, and a REST front
// (grpc-gateway) on -http-addr. Every answer names the serving instance
// ($POD_NAME, else the host name) in the body and in the x-served-by header.
// A Hi call with the gRPC metadata "rotor-work: N" costs N units of CPU work
// before it is answered (at most 1,000,000; see hello.WorkKey), for load
// tests with calls of uneven cost. With -otlp-endpoint, every call and REST
// request is traced with OpenTelemetry and exported over OTLP/gRPC, one
// trace from the REST request to the handler (-trace-sample: the fraction
// of new traces kept).
//
// Every flag can also be set through the environment: -max-connection-age
// is ROTOR_MAX_CONNECTION_AGE, -grpc-addr is ROTOR_GRPC_ADDR, -tls-cert is
// ROTOR_TLS_CERT, and so on. Flags win over the environment.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/example/hello"
	"github.com/rotorkit/rotor/gateway"
	"github.com/rotorkit/rotor/interceptors"
	"github.com/rotorkit/rotor/proto"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h: the flag package has printed the usage.
	case err != nil:
		slog.Error("server failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	cfg := server.DefaultConfig()
	cfg.BindFlags(fs)
	grpcAddr := fs.String("grpc-addr", ":50051", "gRPC listen address")
	httpAddr := fs.String("http-addr", ":8080", "REST gateway listen address (empty: no gateway)")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9090", "admin endpoints (POST /rotate, /metrics, /stats); loopback unless -admin-public; empty: none")
	adminPublic := fs.Bool("admin-public", false, "allow a non-loopback -admin-addr (set -admin-token too)")
	adminToken := fs.String("admin-token", "", "bearer token required by POST /rotate")
	peerDNS := fs.String("peer-dns", "", "headless Service name of this server's pods to watch (name, or dns://SERVER/name); when the set grows, rotate every connection over -rotate-spread")
	peerInterval := fs.Duration("peer-interval", server.DefaultPeerInterval, "how often to resolve -peer-dns")
	httpMaxAge := fs.String("http-max-connection-age", gateway.DefaultMaxConnectionAge.String(), `REST keep-alive connections get "Connection: close" after this long, ±10% (a Go duration, or "off")`)
	fairShare := fs.Bool("fair-share", false, "balance a ClusterIP fleet: pods above their share shed the excess (needs -peer-dns)")
	fairAdmission := fs.Bool("fair-share-admission", true, "with -fair-share: a pod at its share sends a new client connection on as it accepts it while peers have room (false: only sheds move connections)")
	fairMeasure := fs.String("fair-share-measure", "load", "what -fair-share balances: load (calls and handler time) or connections")
	orcaOn := fs.Bool("orca", false, "report load to clients as ORCA backend metrics (CPU and application utilization, QPS), for weighted_round_robin clients of the headless Service")
	tlsCert := fs.String("tls-cert", "", "serve gRPC over TLS with this PEM certificate (chain); reloaded when the file changes")
	tlsKey := fs.String("tls-key", "", "the PEM key of -tls-cert")
	tlsClientCA := fs.String("tls-client-ca", "", "require client certificates signed by these PEM CAs (mutual TLS); needs -tls-cert")
	peerTLSCA := fs.String("peer-tls-ca", "", "with TLS and -fair-share: PEM CAs that sign the other pods' certificates (default: -tls-client-ca); each pod presents its -tls-cert to the others")
	peerTLSName := fs.String("peer-tls-server-name", "", "with TLS and -fair-share: the name the pods' certificates carry (default: the host of -peer-dns)")
	logCalls := fs.Bool("log-calls", true, "log one line per call to stderr (off for load tests, where the lines would swamp the output)")
	var logLevel slog.Level
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "the lowest level logged: debug, info, warn or error (debug adds fair share's sheds that waited and were no longer wanted)")
	ignoreDrain := fs.Bool("stream-ignore-drain", false, "demo: let HiStream ignore connection drains, so streams are cut at the grace")
	tracing := bindTracingFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of server:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEvery flag can also be set in the environment: ROTOR_ and its name in upper case, - as _\n(-grpc-addr is ROTOR_GRPC_ADDR, -max-connection-age ROTOR_MAX_CONNECTION_AGE). Flags win.\n")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := server.ApplyEnv(fs, "ROTOR_"); err != nil {
		return err
	}
	slog.SetLogLoggerLevel(logLevel)
	restAge, err := parseAge(*httpMaxAge)
	if err != nil {
		return fmt.Errorf("-http-max-connection-age: %w", err)
	}
	id := hello.Identity()
	// Tracing (-otlp-endpoint): the chain traces every call, the gateway
	// every REST request; spans are flushed when the server has stopped.
	tp, stopTracing, err := tracing.start(context.Background(), id)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(ctx); err != nil {
			slog.Warn("flushing spans", "err", err)
		}
	}()
	// One registry for the call metrics, rotor's connection metrics and the
	// Go runtime, served as GET /metrics on the admin listener.
	reg := interceptors.NewRegistry()
	chainOpts := []interceptors.Option{interceptors.WithRegisterer(reg), interceptors.WithServedBy(id)}
	if !*logCalls {
		chainOpts = append(chainOpts, interceptors.WithoutLogging())
	}
	if tp != nil {
		chainOpts = append(chainOpts, interceptors.WithTracing(tp))
	}
	chain, err := interceptors.NewChain(chainOpts...)
	if err != nil {
		return err
	}
	conns, err := interceptors.NewConnMetrics(reg)
	if err != nil {
		return err
	}
	opts := []server.Option{
		server.WithConfig(cfg),
		server.WithAddr(*grpcAddr),
		server.WithUnaryInterceptors(chain.Unary()...),
		server.WithStreamInterceptors(chain.Stream()...),
		server.WithGRPCOptions(chain.StatsHandlers()...), // tracing's, with -otlp-endpoint
		server.WithObserver(conns),
		server.WithAdminAddr(*adminAddr),
		server.WithAdminToken(*adminToken),
		server.WithAdminHandler("GET /metrics", interceptors.MetricsHandler(reg)),
	}
	if *adminPublic {
		opts = append(opts, server.WithPublicAdmin())
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsClientCA != "" {
		opts = append(opts, server.WithTLSFiles(*tlsCert, *tlsKey, *tlsClientCA))
	}
	if *peerDNS != "" {
		opts = append(opts, server.WithPeerDNS(*peerDNS, *peerInterval))
	}
	if *fairShare {
		fair := server.FairShare{AdmissionOff: !*fairAdmission}
		switch *fairMeasure {
		case "load":
		case "connections":
			fair.Measure = server.MeasureConnections
		default:
			return fmt.Errorf("-fair-share-measure %q: want load or connections", *fairMeasure)
		}
		if *tlsCert != "" {
			dial, err := peerDialOptions(*peerTLSCA, *tlsClientCA, *tlsCert, *tlsKey, *peerTLSName, *peerDNS)
			if err != nil {
				return err
			}
			fair.DialOptions = dial
		}
		opts = append(opts, server.WithFairShare(fair))
	}
	if *orcaOn {
		opts = append(opts, server.WithORCA(server.ORCA{}))
	}
	srv, err := server.New(opts...)
	if err != nil {
		return err
	}
	hellov1.RegisterHelloServer(srv, &hello.Service{Name: id, IgnoreDrain: *ignoreDrain})
	chain.InitializeMetrics(srv)
	slog.Info("rotor example server starting", "identity", id, "grpc_addr", *grpcAddr, "http_addr", *httpAddr,
		"admin_addr", *adminAddr, "peer_dns", *peerDNS, "fair_share", *fairShare, "tls", *tlsCert != "", "mtls", *tlsClientCA != "", "config", cfg)

	if *httpAddr != "" {
		// Plaintext, or TLS pinned to this server's own certificate.
		creds, err := srv.LocalClientCredentials()
		if err != nil {
			return fmt.Errorf("the REST gateway cannot dial this server (-http-addr \"\" serves no gateway): %w", err)
		}
		gw, err := gateway.New(context.Background(), gateway.Config{
			Fn:                   hellov1.RegisterHelloHandlerFromEndpoint,
			GrpcPort:             *grpcAddr, // ":50051" dials localhost:50051
			HTTPAddr:             *httpAddr,
			DialOptions:          cfg.DialOptions(), // keepalive matched to this server's ping policy
			TransportCredentials: creds,
			OpenAPI:              proto.HelloOpenAPI,
			MaxConnectionAge:     restAge,
			// The same shutdown steps as the gRPC server's: both start at
			// SIGTERM (RegisterOnShutdown below).
			ShutdownDelay: cfg.ShutdownDelay,
			DrainTimeout:  cfg.DrainTimeout,
			// nil without -otlp-endpoint: no spans.
			TracerProvider: tp,
		})
		if err != nil {
			return err
		}
		lis, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			gw.Close()
			return err
		}
		// The gateway shuts down with the gRPC server, by the same rule:
		// /readyz 503 at once, serve on for the delay, then drain.
		srv.RegisterOnShutdown(func(ctx context.Context) { _ = gw.Shutdown(ctx) })
		go func() {
			if err := gw.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				slog.Error("gateway stopped", "err", err)
				os.Exit(1)
			}
		}()
	}
	ctx, stop := server.SignalContext(context.Background())
	defer stop()
	go srv.RotateOnSignal(ctx, syscall.SIGHUP)
	return srv.Run(ctx)
}

// parseAge reads a duration flag that also takes "off".
func parseAge(v string) (time.Duration, error) {
	if strings.EqualFold(strings.TrimSpace(v), "off") {
		return server.Off, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: want a Go duration such as 30s, or \"off\"", v)
	}
	return d, nil
}

// peerDialOptions are the credentials of the fair-share load queries when the
// pods serve TLS: the pods' CA (peerCA, else the client CA of mutual TLS),
// this pod's own certificate as its client certificate, and the name the
// certificates carry (serverName, else the host of the peer DNS name), since
// the queries go to pod IPs that certificates rarely list.
func peerDialOptions(peerCA, clientCA, certFile, keyFile, serverName, peerDNS string) ([]grpc.DialOption, error) {
	ca := cmp.Or(peerCA, clientCA)
	if ca == "" {
		return nil, errors.New("-fair-share with -tls-cert needs -peer-tls-ca (or -tls-client-ca): the CA that signs the other pods' certificates")
	}
	creds, err := server.ClientTLS(ca, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	name := cmp.Or(serverName, peerHost(peerDNS))
	if name == "" {
		return nil, errors.New("-fair-share with -tls-cert needs -peer-tls-server-name (or -peer-dns)")
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithAuthority(name)}, nil
}

// peerHost is the host name in a -peer-dns value: "name", "name:port" or
// "dns://server/name".
func peerHost(peerDNS string) string {
	name := peerDNS
	if rest, ok := strings.CutPrefix(name, "dns://"); ok {
		_, name, _ = strings.Cut(rest, "/")
	}
	if host, _, err := net.SplitHostPort(name); err == nil {
		return host
	}
	return name
}
