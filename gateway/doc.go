// Package gateway serves a REST front (grpc-gateway v2) for a gRPC server, in
// the one call of the classic "gRPC load balancing on Kubernetes" article,
//
//	gateway.RegisterGRPCGateway(&gateway.Config{Fn: pb.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051"})
//
// done properly: the gateway dials with the kit's dial options, answers
// Kubernetes probes truthfully, forwards only the headers it is told to,
// carries a request id, limits what a client may send, rotates its own
// keep-alive connections as rotor rotates gRPC ones, and shuts down by the
// gRPC server's rule. Config follows the kit's one configuration rule (zero
// is the default, server.Off turns a feature off) and reports invalid
// settings as *server.ConfigError values; the article's names (Fn, GrpcPort,
// RegisterGRPCGateway) are a small compatibility surface, kept in
// article.go.
//
// # Two layouts
//
// Same pod. The gateway runs in the gRPC server's process (or a sidecar) and
// dials localhost (GrpcPort ":50051"). REST clients reach the pods through a
// Service of their own; the gateway's connection to its local server never
// needs balancing. Build it with New, serve it, and let the server's
// Shutdown start the gateway's:
//
//	gw, _ := gateway.New(ctx, gateway.Config{Fn: pb.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051"})
//	srv.RegisterOnShutdown(func(ctx context.Context) { _ = gw.Shutdown(ctx) })
//	go gw.ListenAndServe()
//	srv.Run(ctx)
//
// /readyz then turns 503 at the same moment as the server's gRPC health, so
// the pod leaves the REST Service's endpoints with the gRPC one, while REST
// calls keep working through the ShutdownDelay.
//
// Separate Deployment. The gateway runs in pods of its own and dials the gRPC
// server's headless Service, Config.Endpoint "dns:///hello-headless.ns.svc.cluster.local:50051".
// The kit's dial options (server.Config.DialOptions) use round_robin, so
// the gateway keeps one connection per gRPC pod (and one more for
// readiness) and spreads calls over all of them; every rotor GOAWAY makes it
// re-resolve, at most once per 30 s (grpc-go's floor), so it finds new pods
// after a scale-up. Run it with Gateway.Run and a ctx from
// server.SignalContext.
// /readyz is 200 while at least one gRPC pod reports SERVING. A plain
// ClusterIP target ("hello:50051") also works, and re-spreads on each
// rotation, but only as well as kube-proxy's random pick.
//
// # Paths
//
// The gateway serves three paths itself, before the REST routes:
//
//   - /healthz, liveness: 200 while the process serves HTTP. It does not look
//     at the gRPC server: a backend outage must make the gateway unready, not
//     restart it.
//   - /readyz, readiness: 200 while a backend reports SERVING, through a
//     gRPC health Watch (service "") that grpc-go's client-side health
//     checking keeps open to every backend on a connection of the gateway's
//     own, and every connection REST calls take is READY; 503 when no
//     backend serves (as during a rotor server's shutdown), none can be
//     reached within 900 ms, REST calls could not be sent, or the gateway
//     itself is shutting down. A probe costs no RPC. The gateway retries a
//     lost backend every 500 ms at most, and at once when a probe finds it
//     down, so that REST and /readyz recover within a second of the
//     backend's return, together.
//   - /openapi.json, the Config.OpenAPI document when it is set. One path
//     without a version: the document describes every version the gateway
//     serves, and /v1/… belongs to the API's own routes.
//
// # Requests and errors
//
// Every response the gateway writes carries X-Request-Id: the client's when
// it sent 1 to 128 visible ASCII characters, a fresh random id otherwise.
// (A request net/http cannot parse, or whose headers exceed MaxHeaderBytes,
// is answered by net/http itself, in plain text, before the gateway sees
// it.) The gRPC server
// receives it as metadata "x-request-id" (RequestID reads it on the gateway
// side). Of the other request headers only ForwardHeaders reach the gRPC
// server (by default authorization, traceparent, tracestate), plus
// x-forwarded-for and x-forwarded-host, which grpc-gateway adds itself.
//
// Errors use grpc-gateway's JSON error body, {"code":…, "message":…,
// "details":[]}, with these statuses: 400 for a body that is not the request
// message in JSON, 404 for an unknown path, 405 for a known path with the
// wrong method (grpc-gateway alone answers 501), 408 for a request not read
// within ReadTimeout, 413 for a body over MaxBodyBytes, 431 (net/http, plain
// text) for headers over MaxHeaderBytes, 503 when the gRPC server is
// unavailable (with a generic message: grpc-go's names the backend's
// address, and goes to the log with the request id), and the usual mapping
// of gRPC codes otherwise. A JSON body with anything but white space after
// its message is a 400 for calls that take one message. A declared
// Content-Length over MaxBodyBytes is refused before routing, so it gets 413
// even on an unknown path or with the wrong method. The 405 of a REST route
// carries an Allow header when Config.OpenAPI lists the path (grpc-gateway's
// mux does not tell which methods a path has); the gateway's own paths
// always send it.
//
// # Tracing
//
// With Config.TracerProvider set, the Gateway traces every request to a
// REST route with OpenTelemetry: otelhttp opens a server span named after
// the route ("POST /v1/hi", with http.route), continuing the W3C trace
// context of the request, and otelgrpc a client span under it for the gRPC
// call, whose context replaces the request's traceparent in the call's
// metadata. With the gRPC server traced too (interceptors.WithTracing), a
// REST call is one trace: HTTP server span, gRPC client span, gRPC server
// span. The probes and /openapi.json are not traced, nor the readiness
// connection's health Watch. Off (nil) by default; the request's
// traceparent and tracestate are forwarded either way.
//
// # Defaults
//
//	HTTPAddr           :8080
//	MaxConnectionAge   30 s ±10 %   the gRPC default age: REST clients re-spread as often as gRPC ones
//	ReadHeaderTimeout  10 s         slow-header clients cannot hold connections
//	ReadTimeout        30 s         whole request; net/http lifts it once the body is read, so streams live on
//	WriteTimeout       30 s         per write, not per response, so server-streaming calls are not cut
//	IdleTimeout        90 s         above the 60 s of common L7 load balancers, which should close first
//	MaxHeaderBytes     64 KiB       room for large bearer tokens, far below net/http's 1 MiB
//	MaxBodyBytes       4 MiB        the gRPC server's default MaxRecvMsgSize
//	ShutdownDelay      5 s          the gRPC server's default
//	DrainTimeout       45 s         the gRPC server's default; a drain ends when its requests have
//
// # Keep-alive rotation
//
// HTTP/1.1 keep-alive connections pin a client to one pod exactly as gRPC's
// HTTP/2 connections do. The gateway records when each connection was accepted
// (http.Server.ConnContext) and answers on a connection older than
// MaxConnectionAge with "Connection: close" (on HTTP/2, net/http sends GOAWAY
// instead). The client learns it with the response, before it could send
// another request on the connection, so no request fails; its next request
// opens a new connection, which kube-proxy may send to another pod.
//
// # Cost
//
// BenchmarkGateway compares a POST /v1/hi through this gateway with the same
// call through a bare runtime.NewServeMux; README.md gives the measured
// ratio.
package gateway
