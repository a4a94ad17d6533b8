// Package interceptors gives a rotor server its telemetry: a default
// interceptor chain assembled from go-grpc-middleware v2 (panic recovery,
// one log line per call through log/slog, Prometheus call metrics) and
// rotor's own connection metrics (ConnMetrics), which show what rotation
// does: how many connections each pod holds, how long they live, how many
// calls they carry, and how many GOAWAYs rotor sent and why. Rotation exists
// to spread calls evenly over pods, and these series are how you see that it
// does. Every piece works with a plain grpc.NewServer as well as with rotor's
// server package, and none of it imports that package.
//
// To start, on rotor's server (ExampleConnMetrics adds the connection
// metrics, ExampleNewChain shows a plain grpc.Server and /metrics):
//
//	reg := interceptors.NewRegistry()
//	chain, err := interceptors.NewChain(interceptors.WithRegisterer(reg))
//	if err != nil {
//		return err
//	}
//	srv, err := server.New(
//		server.WithUnaryInterceptors(chain.Unary()...),
//		server.WithStreamInterceptors(chain.Stream()...),
//	)
//
// On a plain grpc.Server: grpc.NewServer(chain.ServerOptions()...).
//
// # The chain
//
// NewChain builds the chain; Chain.Unary and Chain.Stream return the
// interceptors for server.WithUnaryInterceptors and
// server.WithStreamInterceptors, Chain.ServerOptions the options for
// grpc.NewServer. Outermost first: tracing (off unless WithTracing),
// ServedBy (off unless WithServedBy), metrics, logging, recovery. Recovery is innermost so that a panic reaches
// metrics and logging as the codes.Internal the client gets; the client sees
// the fixed message "internal error", never the panic value, which is logged
// with its stack. Calls to /grpc.health.v1.Health/ are not logged unless
// WithLogHealthChecks is given; the kit's own calls between pods (fair
// share's rotor.fairshare.v1.LoadService, ORCA's out-of-band reports) are
// never logged.
//
// # Tracing
//
// WithTracing (off by default) traces every call with OpenTelemetry: one
// server span per call, named after the method ("hello.v1.Hello/Hi"), that
// continues the W3C trace context of the call, so that a REST call through
// the gateway (gateway.Config.TracerProvider) is one trace: HTTP server
// span, gRPC client span, gRPC server span. The span is opened by a stats
// handler, which is a grpc.ServerOption: Chain.ServerOptions includes it,
// and Chain.StatsHandlers gives it for server.WithGRPCOptions. On rotor's
// server the call's span also says what the kit did to its connection: an
// event SpanEventGoAway, at the moment the kit sent the connection GOAWAY
// while the call ran, with its reason (GoAwayReasonKey: age, api, admin,
// signal, peers, fairshare, shutdown, lameduck), and LameDuckKey on calls
// served on a lame-duck connection during a shutdown drain. The server
// hands each call its connection through internal/conninfo; this package
// does not import it.
//
// The spans come from otelgrpc, OpenTelemetry Go contrib's gRPC
// instrumentation, rather than from grpc-go's own stats/opentelemetry:
// otelgrpc follows OpenTelemetry's RPC semantic conventions (span
// "hello.v1.Hello/Hi", rpc.system.name, rpc.method, rpc.response.status_code),
// which tracing backends know; it can leave calls out (WithTracing leaves
// out Kubernetes probes and the kit's own load exchange, which would
// otherwise make a trace every few seconds per pod); it is the gRPC half of
// the project whose otelhttp traces the gateway; and it needs nothing
// experimental. grpc-go 1.85's stats/opentelemetry is built for gRPC's
// metrics (gRFC A66); its tracing (gRFC A72) takes its options from the
// EXPERIMENTAL package grpc/experimental/opentelemetry, names spans
// "Recv.hello.v1.Hello.Hi" without those conventions, and has no filter
// for tracing, so every health probe would become a trace.
//
// # Series
//
// From go-grpc-middleware's Prometheus provider, labelled grpc_type,
// grpc_service, grpc_method (and grpc_code on handled):
//
//	grpc_server_started_total            counter
//	grpc_server_handled_total            counter, by grpc_code
//	grpc_server_msg_received_total       counter
//	grpc_server_msg_sent_total           counter
//	grpc_server_handling_seconds         histogram (WithLatencyBuckets)
//
// From ConnMetrics (the reasons are the server package's Reason values):
//
//	rotor_connections_open                        gauge
//	rotor_connections_opened_total                counter
//	rotor_connections_closed_total                counter, by reason: the GOAWAY reason
//	                                              (age, api, admin, signal, peers,
//	                                              fairshare, shutdown, lameduck), client
//	                                              when rotor sent none, unknown
//	                                              through the stats handler
//	rotor_connection_lifetime_seconds             histogram, 1 s … 1 h
//	rotor_connection_rpcs                         histogram, calls per connection,
//	                                              0, 1, 10, … 1e6
//	rotor_rotations_total                         counter, GOAWAYs sent, by reason
//	rotor_connections_refused_total               counter, by reason (max_connections)
//	rotor_fairshare_peers                         gauge, peers that answered the last
//	                                              exchange (0: fair share idle)
//	rotor_fairshare_own_connections               gauge
//	rotor_fairshare_fleet_mean_connections        gauge
//	rotor_fairshare_own_load                      gauge, seconds per second (the
//	                                              server.MeasureLoad load)
//	rotor_fairshare_fleet_mean_load               gauge, seconds per second, as
//	                                              this server estimates it
//	rotor_fairshare_shed_connections_total        counter
//
// There is no instance or pod label: Prometheus adds the target's (instance
// always; pod where the scrape configuration sets it, as a PodMonitor and
// example/k8s/monitoring/scrape.yaml do).
//
// # PromQL
//
// The queries are for one fleet; where Prometheus scrapes several, add a
// selector such as {namespace="shop", job="api"} to each series. They
// group by pod, the label that the prometheus-operator's PodMonitor and
// example/k8s/monitoring/scrape.yaml give each pod's series. Calls are
// counted without gRPC health checks (Kubernetes probes) and without the
// load queries that fair share's pods send each other, several a second
// per pod, which would pull every share toward 1/n. A test runs these
// queries against a real Prometheus in the lab during a scale-up
// (example/k8s/monitoring).
//
// Each pod's share of the calls (1/n for each of n pods when balance is
// perfect):
//
//	sum by (pod) (rate(grpc_server_handled_total{grpc_service!~"grpc.health.v1.Health|rotor.fairshare.v1.LoadService"}[1m]))
//	  / ignoring(pod) group_left
//	  sum(rate(grpc_server_handled_total{grpc_service!~"grpc.health.v1.Health|rotor.fairshare.v1.LoadService"}[1m]))
//
// Imbalance, the busiest pod against the mean (1 is perfect):
//
//	max(sum by (pod) (rate(grpc_server_handled_total{grpc_service!~"grpc.health.v1.Health|rotor.fairshare.v1.LoadService"}[1m])))
//	  / avg(sum by (pod) (rate(grpc_server_handled_total{grpc_service!~"grpc.health.v1.Health|rotor.fairshare.v1.LoadService"}[1m])))
//
// Rotations per second, by reason:
//
//	sum by (reason) (rate(rotor_rotations_total[5m]))
//
// Calls per second per pod, and connections per pod:
//
//	sum by (pod) (rate(grpc_server_handled_total{grpc_service!~"grpc.health.v1.Health|rotor.fairshare.v1.LoadService"}[1m]))
//	sum by (pod) (rotor_connections_open)
//
// The second counts every connection a pod holds: its clients' (a REST
// gateway in the pod is one, with a connection for its readiness checks and
// one for REST calls once it has carried one) and, with fair share, one from
// each other pod for its load queries. rotor_fairshare_own_connections
// leaves the peers' out; the admin endpoint's GET /stats gives both.
//
// Median connection lifetime (near MaxConnectionAge when age rotation
// drives it) and the share of closes that rotor did not start:
//
//	histogram_quantile(0.5, sum by (le) (rate(rotor_connection_lifetime_seconds_bucket[15m])))
//	sum(rate(rotor_connections_closed_total{reason="client"}[5m])) / sum(rate(rotor_connections_closed_total[5m]))
//
// # Connection metrics, two ways in
//
// With rotor's Server, pass the ConnMetrics to server.WithObserver. With a
// plain grpc.Server, install it with grpc.StatsHandler; grpc-go does not
// tell stats handlers about GOAWAYs, so there closes are labelled "unknown"
// and rotor_rotations_total stays at zero. Doing both is harmless: once the
// observer is in use, the stats handler leaves connections to it.
//
// # Admin endpoint
//
// NewRegistry returns a registry with the Go and process collectors;
// register the chain (WithRegisterer) and the ConnMetrics on it and serve
// MetricsHandler(registry) as /metrics on the admin listener.
//
// # The call line
//
// One slog record per finished call, message "finished call", with
// grpc.service, grpc.method, grpc.method_type, grpc.code, grpc.time_us (the
// duration in whole microseconds), peer.address, grpc.error when the call
// failed, and any fields added with go-grpc-middleware's logging.AddFields
// or logging.InjectFields. The level follows the code as go-grpc-middleware
// maps it (logging.DefaultServerCodeToLevel): Info for OK and for what the
// client caused (Canceled, InvalidArgument, NotFound, AlreadyExists,
// Unauthenticated), Warn or Error for the rest, so a logger whose level is
// Warn logs only the server's failures, and the other calls cost it almost
// nothing. The code is the one the client gets and the metrics count: a
// handler's context error is Canceled or DeadlineExceeded, any other error
// that is not a status Unknown.
//
// The line is written by a reporter on go-grpc-middleware's interceptor
// framework (the one its logging and Prometheus interceptors run on), not by
// its logging interceptor, which assembles many more fields a call (see
// Cost).
// WithLoggingOptions switches to that interceptor, for payload logging and
// its other options; its lines have the same keys and a few more.
//
// # Cost
//
// BenchmarkThroughput is the headline: a bare server and a server with the
// chain (or one piece of it) side by side, batches of calls alternating
// between them, reporting both rates and their ratio (x-bare), for two
// loads: 16 callers on one connection (1conn), and 32 callers over four
// connections (4conns), which keeps both cores busy, so that its ratio is
// the chain's share of the CPU a call costs. BenchmarkChain makes one unary
// call at a time over a real gRPC connection and reports ns/op and
// allocs/op; BenchmarkChainAlone runs the chain around an empty handler,
// without a transport: the server CPU a call pays for the chain. Run them
// several times, so that the pieces interleave on a busy machine:
//
//	go test -c -o /tmp/interceptors.test ./interceptors/
//	for i in 1 2 3 4 5; do /tmp/interceptors.test -test.run '^$' -test.bench . -test.benchmem; done > bench.txt
//
// README.md gives the measured figures. For a server of tiny, very hot
// calls, raise the logger's level to Warn or use WithoutLogging and rely on
// the metrics. The rows default+trace1% and default+trace100% add
// WithTracing with an OpenTelemetry SDK provider that samples 1 % and all
// of the calls (ParentBased(TraceIDRatioBased), batched to an exporter that
// drops the spans): otelgrpc extracts the trace context and starts a span
// for every call, sampled or not, so even 1 % costs a few microseconds of
// CPU a call.
package interceptors
