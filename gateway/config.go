package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotorkit/rotor/internal/conf"
	"github.com/rotorkit/rotor/server"
)

// RegisterFunc registers the REST handlers of one gRPC service on mux and
// dials endpoint with opts for them. It is the shape protoc-gen-grpc-gateway
// generates as Register<Service>HandlerFromEndpoint, so pass those directly:
//
//	gateway.Config{Fn: hellov1.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051"}
//
// The generated function closes its connection when ctx ends; the Gateway
// ends that ctx when it is shut down or closed.
type RegisterFunc func(ctx context.Context, mux *runtime.ServeMux, endpoint string, opts []grpc.DialOption) error

// Defaults, used for a Config field left at zero. The package documentation
// explains the choice of each.
const (
	DefaultHTTPAddr          = ":8080"
	DefaultMaxConnectionAge  = server.DefaultMaxConnectionAge // 30 s, as for gRPC
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = server.DefaultMaxRecvMsgSize // 4 MiB, as for gRPC
	DefaultShutdownDelay     = server.DefaultShutdownDelay  // 5 s, as for gRPC
	DefaultDrainTimeout      = server.DefaultDrainTimeout   // as for gRPC
)

// Paths the Gateway serves itself, before the registered REST routes.
const (
	HealthzPath = "/healthz"      // liveness: 200 while the process serves HTTP
	ReadyzPath  = "/readyz"       // readiness: follows the gRPC health of the endpoint
	OpenAPIPath = "/openapi.json" // Config.OpenAPI, when set
)

// RequestIDHeader is the header that carries a request's id: taken from the
// request when it is well formed, generated otherwise, forwarded to the gRPC
// server as metadata of the same name and echoed in the response.
const RequestIDHeader = "X-Request-Id"

// DefaultForwardHeaders returns the request headers forwarded to the gRPC
// server as metadata when Config.ForwardHeaders is nil:
//
//   - authorization, so that the gRPC server authenticates REST callers as it
//     does gRPC ones (grpc-gateway forwards it unconditionally anyway; leave
//     it out of ForwardHeaders and the Gateway strips it);
//   - traceparent and tracestate (W3C Trace Context), so that traces cross the
//     gateway.
//
// Cookie is left out on purpose: it carries browser sessions, often large,
// that most gRPC servers have no business reading; list it when yours
// authenticates with them. X-Request-Id is always forwarded and is not listed.
func DefaultForwardHeaders() []string {
	return []string{"authorization", "traceparent", "tracestate"}
}

// Config holds every setting of a Gateway. It follows the kit's one rule
// (see package server): a field left at zero takes its default, and
// server.Off turns a feature off where the field allows it. So the article's
// literal is a complete configuration:
//
//	gateway.Config{Fn: pb.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051"}
//
// New (and Validate) report every invalid field at once, each as a
// *server.ConfigError naming "gateway.Config.<Field>".
type Config struct {
	// Fn registers one service's REST handlers: the classic article's name
	// (see RegisterGRPCGateway). It runs first, then Register.
	Fn RegisterFunc
	// GrpcPort is the classic article's name for Endpoint, as a port:
	// ":50051" (or "50051") means localhost:50051, the gRPC server of the
	// same pod. Any other value is used as Endpoint. Set one of GrpcPort and
	// Endpoint, or both to the same endpoint.
	GrpcPort string

	// Register registers further services' REST handlers, in order; each is
	// typically a generated Register<Service>HandlerFromEndpoint. At least
	// one of Fn and Register is required.
	Register []RegisterFunc
	// Endpoint is the gRPC target the Gateway dials, in grpc.NewClient's
	// syntax: "localhost:50051" when the gateway runs beside the gRPC
	// server, "dns:///hello-headless.ns.svc.cluster.local:50051" when it
	// runs as its own Deployment (see the package documentation). ":50051"
	// means localhost:50051.
	Endpoint string

	// HTTPAddr is the address ListenAndServe and Run listen on, as for
	// net.Listen. Default ":8080".
	HTTPAddr string

	// DialOptions replace the kit's recommended dial options,
	// server.Config{}.DialOptions(): a keepalive that the server's ping
	// policy accepts and round_robin over every address of the endpoint.
	// Set them, from the DialOptions of the gRPC server's own Config for
	// instance, when it does not run with the kit's defaults. Transport
	// credentials come from TransportCredentials; a
	// grpc.WithTransportCredentials given here wins over it. The Gateway
	// adds its own after them: no idle mode, a reconnect backoff of at most
	// 500 ms (so that REST recovers within a second of the backend's
	// return), and an interceptor that /readyz and the JSON checks use.
	DialOptions []grpc.DialOption

	// TransportCredentials secures the connections to the gRPC server.
	// Default nil: plaintext (insecure.NewCredentials()), right for localhost
	// and for a cluster whose network is trusted or meshed. For a TLS server,
	// use server.ClientTLS (CA, and a client certificate for mutual TLS), or,
	// in the gRPC server's own process, its LocalClientCredentials.
	TransportCredentials credentials.TransportCredentials

	// MuxOptions are applied to the runtime.ServeMux after the Gateway's own
	// (header matcher, request-id metadata, error and routing-error
	// handlers). An option given here replaces the Gateway's of the same
	// kind: WithErrorHandler loses the 413/408 mapping, WithRoutingErrorHandler
	// the 405, WithIncomingHeaderMatcher the ForwardHeaders allow-list.
	MuxOptions []runtime.ServeMuxOption

	// OpenAPI, when set, is served as is at OpenAPIPath (/openapi.json) with
	// Content-Type application/json; typically the embedded
	// <service>.swagger.json that protoc-gen-openapiv2 writes. It must be
	// valid JSON. Its paths also give the Allow header of a 405 (wrong
	// method on a REST route), which the gateway cannot learn otherwise.
	OpenAPI []byte

	// ForwardHeaders lists the request headers (case-insensitive) forwarded
	// to the gRPC server as metadata under their lower-case name. nil means
	// DefaultForwardHeaders(); an empty, non-nil slice forwards none.
	// X-Request-Id is always forwarded, and grpc-gateway always adds
	// x-forwarded-for and x-forwarded-host. Hop-by-hop headers, Host,
	// Content-Length, Content-Type, Te, User-Agent and grpc-* names are
	// rejected: gRPC reserves or rejects them. A *-bin header is decoded
	// from base64, as gRPC binary metadata.
	ForwardHeaders []string

	// MaxConnectionAge is how long a REST (HTTP/1.1 keep-alive or HTTP/2)
	// connection is reused before the Gateway answers on it with
	// "Connection: close" (a GOAWAY on HTTP/2), so that the client opens a
	// new one and kube-proxy picks a pod again. Each connection gets ±10 %
	// jitter, once. No request fails: the client learns from the response
	// itself not to reuse the connection. Default 30 s, the gRPC default;
	// server.Off never rotates. Allowed: 1 s or more.
	MaxConnectionAge time.Duration

	// ReadHeaderTimeout bounds reading a request's headers; it is what stops
	// a client from holding connections open by sending headers slowly.
	// Default 10 s. Allowed: 1 s to 5 min; it cannot be turned off.
	ReadHeaderTimeout time.Duration

	// ReadTimeout bounds reading a whole request, headers and body, as
	// http.Server.ReadTimeout (which it sets). A body that does not arrive
	// in time gets 408. It does not cut streaming responses: net/http clears
	// the read deadline once the body has been read. Default 30 s;
	// server.Off for no limit. Allowed: 1 s or more.
	ReadTimeout time.Duration

	// WriteTimeout bounds each write of a response to the client, not the
	// whole response: a client that stops reading is cut after it, while a
	// server-streaming response that keeps flowing, or a call that is slow
	// to answer, lasts as long as it needs, over HTTP/1.1 and HTTP/2.
	// (http.Server.WriteTimeout bounds the whole response and would cut
	// every longer stream, so the Gateway leaves it at 0.) Default 30 s;
	// server.Off for no limit. Allowed: 1 s or more.
	WriteTimeout time.Duration

	// IdleTimeout closes a keep-alive connection that carried no request for
	// this long. Default 90 s: longer than the 60 s of common L7 load
	// balancers, so that they, not the Gateway, close idle connections.
	// server.Off for no limit. Allowed: 1 s or more.
	IdleTimeout time.Duration

	// MaxHeaderBytes caps the size of a request's headers; larger requests
	// get 431. Default 64 KiB. Allowed: 1 KiB to 16 MiB.
	MaxHeaderBytes int

	// MaxBodyBytes caps the size of a request's body; larger requests get
	// 413 with a grpc-gateway error body (code 8, RESOURCE_EXHAUSTED).
	// Default 4 MiB, the gRPC server's default MaxRecvMsgSize. Allowed: 1
	// or more.
	MaxBodyBytes int64

	// ShutdownDelay is how long Shutdown keeps serving, /readyz already
	// 503, before it stops accepting connections, so that Kubernetes removes
	// the pod from the Service endpoints first: the same rule as the gRPC
	// server's. Default 5 s; server.Off stops accepting at once. Allowed: up
	// to 10 min.
	ShutdownDelay time.Duration

	// DrainTimeout bounds Shutdown's drain after the delay: requests still
	// open then are cut. Default 45 s, as for the gRPC server; a drain ends
	// as soon as its requests have. server.Off cuts them at once. Allowed:
	// up to 10 min.
	DrainTimeout time.Duration

	// Logger receives lifecycle events and net/http's own errors, with
	// component=rotor/gateway. Default slog.Default().
	Logger *slog.Logger

	// TracerProvider, when set, traces REST calls with OpenTelemetry: a
	// server span for each request to a REST route (otelhttp), named after
	// the route ("POST /v1/hi"), continuing the W3C trace context
	// (traceparent, tracestate) and baggage of the request; under it, a
	// client span for the gRPC call (otelgrpc), whose context goes to the
	// gRPC server as traceparent metadata, replacing the request's. With the
	// gRPC server traced too (interceptors.WithTracing), a REST call is one
	// trace: HTTP server span, gRPC client span, gRPC server span. Sampling
	// is the provider's. The Gateway's own paths (HealthzPath, ReadyzPath,
	// OpenAPIPath) and its readiness connection are not traced. Default
	// nil: no spans, and the request's traceparent and tracestate still
	// reach the gRPC server (ForwardHeaders), so that a traced server
	// continues the client's trace.
	TracerProvider trace.TracerProvider
}

// defaults holds every field's default that is a value: the value a zero
// field takes (Logger's, slog.Default(), is read when the Gateway is made).
var defaults = Config{
	HTTPAddr:          DefaultHTTPAddr,
	MaxConnectionAge:  DefaultMaxConnectionAge,
	ReadHeaderTimeout: DefaultReadHeaderTimeout,
	ReadTimeout:       DefaultReadTimeout,
	WriteTimeout:      DefaultWriteTimeout,
	IdleTimeout:       DefaultIdleTimeout,
	MaxHeaderBytes:    DefaultMaxHeaderBytes,
	MaxBodyBytes:      DefaultMaxBodyBytes,
	ShutdownDelay:     DefaultShutdownDelay,
	DrainTimeout:      DefaultDrainTimeout,
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	conf.Fill(&c, defaults)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// resolved is a valid Config, defaults filled, with what New derives from
// it.
type resolved struct {
	Config
	fns         []RegisterFunc
	endpoint    string
	dialOpts    []grpc.DialOption
	routes      []route           // of OpenAPI, for Allow
	forward     map[string]string // canonical header key → metadata key, but Authorization
	forwardAuth bool              // Authorization is listed; grpc-gateway forwards it itself
}

// Validate reports every invalid or inconsistent field of c at once, as
// *server.ConfigError values joined with errors.Join, or nil when c is
// valid. New checks exactly this.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// on turns server.Off into the zero it stands for in a length of time.
func on(d time.Duration) time.Duration {
	if d == server.Off {
		return 0
	}
	return d
}

// resolve validates c and derives what New needs.
func (c Config) resolve() (resolved, error) {
	var errs []error
	bad := func(field string, value any, want string) {
		errs = append(errs, &server.ConfigError{Field: "gateway.Config." + field, Value: conf.Format(value), Want: want})
	}
	c = c.withDefaults()
	r := resolved{Config: c}

	r.fns, r.endpoint = c.articleFields(bad)

	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || !validPort(port) {
		bad("HTTPAddr", fmt.Sprintf("%q", c.HTTPAddr), `a listen address such as ":8080" or "127.0.0.1:8080"`)
	}

	creds := c.TransportCredentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	// Credentials first, so that a WithTransportCredentials in DialOptions wins.
	r.dialOpts = []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.DialOptions == nil {
		r.dialOpts = append(r.dialOpts, server.Config{}.DialOptions()...)
	} else {
		r.dialOpts = append(r.dialOpts, c.DialOptions...)
	}

	if c.OpenAPI != nil && !json.Valid(c.OpenAPI) {
		bad("OpenAPI", fmt.Sprintf("%d bytes", len(c.OpenAPI)), "a JSON document (the .swagger.json of protoc-gen-openapiv2), or nil")
	}
	r.routes = routesOf(c.OpenAPI)

	fwd := c.ForwardHeaders
	if fwd == nil {
		fwd = DefaultForwardHeaders()
	}
	r.forward = make(map[string]string, len(fwd))
	for i, h := range fwd {
		if why := forwardable(h); why != "" {
			bad(fmt.Sprintf("ForwardHeaders[%d]", i), fmt.Sprintf("%q", h), why)
			continue
		}
		if k := textproto.CanonicalMIMEHeaderKey(h); k == "Authorization" {
			r.forwardAuth = true
		} else {
			r.forward[k] = strings.ToLower(h)
		}
	}

	// A length of time of at least 1 s, or server.Off where offMeans says
	// what Off does ("" when it cannot be off).
	atLeastSecond := func(field string, d, def, max time.Duration, offMeans string) {
		switch {
		case d == server.Off && offMeans != "":
		case d < time.Second || d > max:
			want := fmt.Sprintf("at least 1s, 0 for the default %s", def)
			if max < time.Duration(math.MaxInt64) {
				want = fmt.Sprintf("between 1s and %s, 0 for the default %s", max, def)
			}
			if offMeans != "" {
				want += ", or server.Off for " + offMeans
			} else {
				want += "; it cannot be turned off"
			}
			bad(field, d, want)
		}
	}
	forever := time.Duration(math.MaxInt64)
	atLeastSecond("MaxConnectionAge", c.MaxConnectionAge, DefaultMaxConnectionAge, forever, "never rotating")
	atLeastSecond("ReadHeaderTimeout", c.ReadHeaderTimeout, DefaultReadHeaderTimeout, 5*time.Minute, "")
	atLeastSecond("ReadTimeout", c.ReadTimeout, DefaultReadTimeout, forever, "no limit")
	atLeastSecond("WriteTimeout", c.WriteTimeout, DefaultWriteTimeout, forever, "no limit")
	atLeastSecond("IdleTimeout", c.IdleTimeout, DefaultIdleTimeout, forever, "no limit")
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 16<<20 {
		bad("MaxHeaderBytes", c.MaxHeaderBytes, "between 1024 (1 KiB) and 16777216 (16 MiB), or 0 for the default 64 KiB")
	}
	if c.MaxBodyBytes < 1 {
		bad("MaxBodyBytes", c.MaxBodyBytes, "at least 1 byte, or 0 for the default 4 MiB")
	}
	upTo := func(field string, d, def time.Duration, offMeans string) {
		if d != server.Off && (d < 0 || d > maxShutdownStep) {
			bad(field, d, fmt.Sprintf("at most 10m, 0 for the default %s, or server.Off to %s", def, offMeans))
		}
	}
	upTo("ShutdownDelay", c.ShutdownDelay, DefaultShutdownDelay, "stop accepting at once")
	upTo("DrainTimeout", c.DrainTimeout, DefaultDrainTimeout, "cut open requests at once")
	return r, errors.Join(errs...)
}

// maxShutdownStep bounds ShutdownDelay and DrainTimeout, as the server's:
// they cover endpoint propagation and requests finishing, seconds, not
// hours.
const maxShutdownStep = 10 * time.Minute

// validPort says whether port is a port number or a service name the
// system knows ("" listens on a free port).
func validPort(port string) bool {
	if port == "" {
		return true
	}
	_, err := net.LookupPort("tcp", port)
	return err == nil
}

// forwardable says why header h cannot be forwarded as gRPC metadata, or ""
// when it can.
func forwardable(h string) string {
	l := strings.ToLower(h)
	switch {
	case l == "":
		return "a header name"
	case strings.IndexFunc(l, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0:
		return "a header name of letters, digits, '-', '_' and '.' (gRPC metadata keys allow no more)"
	case strings.HasPrefix(l, "grpc-"):
		return "a name outside grpc-*, which gRPC reserves for itself"
	case strings.HasPrefix(l, "proxy-"):
		return "an end-to-end header, not a hop-by-hop proxy-* one"
	}
	switch l {
	case "x-request-id":
		return "another name: x-request-id is always forwarded"
	case "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
		"host", "content-length", "content-type", "user-agent":
		return "a header that is neither hop-by-hop nor set by the transport (connection, keep-alive, te, trailer, transfer-encoding, upgrade, host, content-length, content-type, user-agent)"
	}
	return ""
}
