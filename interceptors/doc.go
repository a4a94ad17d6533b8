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
// # The chain
//
// NewChain builds the chain; Chain.Unary and Chain.Stream return the
// interceptors for server.WithUnaryInterceptors and
// server.WithStreamInterceptors, Chain.ServerOptions the options for
// grpc.NewServer. Outermost first: ServedBy (off unless WithServedBy),
// metrics, logging, recovery. Recovery is innermost so that a panic reaches
// metrics and logging as the codes.Internal the client gets; the client sees
// the fixed message "internal error", never the panic value, which is logged
// with its stack. Calls to /grpc.health.v1.Health/ are not logged unless
// WithLogHealthChecks is given.
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
// From ConnMetrics:
//
//	rotor_connections_open               gauge
//	rotor_connections_opened_total       counter
//	rotor_connections_closed_total       counter, by reason: the GOAWAY reason
//	                                     (age, api, admin, signal, peers,
//	                                     shutdown), client when rotor sent
//	                                     none, unknown through the stats
//	                                     handler
//	rotor_connection_lifetime_seconds    histogram, 1 s … 1 h
//	rotor_connection_rpcs                histogram, calls per connection,
//	                                     0, 1, 10, … 1e6
//	rotor_rotations_total                counter, GOAWAYs sent, by reason
//
// There is no instance label: Prometheus adds the target's own (instance,
// and pod under the usual Kubernetes service discovery).
//
// # PromQL
//
// Each pod's share of the calls (1/n for each of n pods when balance is
// perfect):
//
//	sum by (pod) (rate(grpc_server_handled_total{grpc_service!="grpc.health.v1.Health"}[1m]))
//	  / ignoring(pod) group_left
//	sum(rate(grpc_server_handled_total{grpc_service!="grpc.health.v1.Health"}[1m]))
//
// Imbalance, the busiest pod against the mean (1 is perfect):
//
//	max(sum by (pod) (rate(grpc_server_handled_total{grpc_service!="grpc.health.v1.Health"}[1m])))
//	  / avg(sum by (pod) (rate(grpc_server_handled_total{grpc_service!="grpc.health.v1.Health"}[1m])))
//
// Rotations per second, by reason, and connections per pod:
//
//	sum by (reason) (rate(rotor_rotations_total[5m]))
//	sum by (pod) (rotor_connections_open)
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
// its logging interceptor, which assembles its fields with 48 allocations
// a call and costs about four times the CPU (see Cost).
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
// call at a time over a real gRPC connection, on loopback TCP and on
// bufconn, and reports ns/op and allocs/op (client and server together);
// BenchmarkChainAlone runs the chain around an empty handler, without a
// transport: the server CPU a call pays for the chain. Run them with:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./interceptors/
//
// On a busy machine, run the test binary several times instead, so that the
// pieces interleave:
//
//	go test -c -o /tmp/interceptors.test ./interceptors/
//	for i in 1 2 3 4 5; do /tmp/interceptors.test -test.run '^$' -test.bench . -test.benchmem; done > bench.txt
//
// Medians of five such runs on a shared 2-core AMD EPYC VM, the call line
// going to a JSON handler on io.Discard (so that the cost is formatting, not
// a disk). default-warn is the default chain with the logger's level at
// Warn; mwlogging is go-grpc-middleware's logging interceptor
// (WithLoggingOptions) in place of the call line.
//
//	                throughput x-bare   one call at a time          alone (server only)
//	                1conn   4conns      tcp ns/op  bufconn  allocs  ns/op  allocs
//	bare            1       1           52 300     29 400   152         –
//	recovery        1.02    0.99        57 100     26 600   154        12    0
//	logging         0.97    0.92        60 600     26 600   158     1 060    4
//	metrics         0.96    0.94        58 000     29 200   156       630    2
//	servedby        0.96    0.94        55 600     27 000   160         –
//	default         0.92    0.90        62 700     29 100   162     1 870    6
//	default-nolog   1.00    0.95        56 000     27 400   157       630    2
//	default-warn    0.96    0.93        59 400     28 100   161       980    5
//	mwlogging       0.83    0.76        70 200     33 600   202     4 390   48
//	default-mwlog   0.80    0.76        72 300     36 500   206     5 420   50
//
// The default chain keeps 0.92 of a bare server's throughput on one
// connection (five runs: 0.88 to 0.92) and 0.90 with both cores busy (0.84
// to 0.91); two earlier series of five, before the last optimisations of
// the call line, gave medians of 0.92 and 0.95 on one connection and 0.91
// and 0.90 with both cores busy. So: 0.92 to 0.95, and 0.90, which is the
// target and no more. With go-grpc-middleware's logging interceptor it keeps
// 0.80 and 0.76. A ratio here is good to about ±0.04 (recovery, 12 ns of
// work, ranges from 0.94 to 1.02), so the pieces are best compared by their
// CPU and allocations alone. The one-call-at-a-time columns are latency,
// not throughput, and swing by ±15 %: read them for allocations. Next to a
// real handler (a database call, milliseconds) all of this is noise; for a
// server of tiny, very hot calls, raise the logger's level to Warn or use
// WithoutLogging and rely on the metrics.
package interceptors
