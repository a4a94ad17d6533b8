package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

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

// Off turns off a feature that is on by default: set ConnectionMaxAge to Off
// to never rotate REST connections, ShutdownDelay to Off to stop Run without
// a delay. Any negative value does the same, as for net.Dialer.KeepAlive.
const Off time.Duration = -1

// Defaults. The package documentation explains the choice of each.
const (
	DefaultHTTPAddr          = ":8080"
	DefaultConnectionMaxAge  = server.DefaultMaxConnectionAge // 30 s, as for gRPC
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = server.DefaultMaxRecvMsgSize // 4 MiB, as for gRPC
	DefaultShutdownDelay     = server.DefaultShutdownDelay  // 5 s
	DefaultShutdownTimeout   = server.DefaultDrainTimeout   // 20 s
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

// Config holds every setting of a Gateway. The zero value of every field
// except the register functions and the endpoint means its default, so the
// article's literal is a complete configuration:
//
//	gateway.Config{Fn: pb.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051"}
//
// Negative durations and sizes are rejected, except where the field says a
// negative value (Off) turns a feature off. New validates the Config and
// reports every invalid field at once, each as a *ConfigError.
type Config struct {
	// Fn registers one service's REST handlers, typically a generated
	// Register<Service>HandlerFromEndpoint. Fns registers more; Fn runs
	// first. At least one of Fn and Fns is required.
	Fn RegisterFunc
	// Fns registers further services, in order.
	Fns []RegisterFunc

	// GrpcPort is the article's name for the gRPC endpoint: ":50051" (or
	// "50051") means localhost:50051, the gRPC server in the same pod. Any
	// other value is used as GRPCEndpoint. Set one of the two, or both to the
	// same endpoint.
	GrpcPort string
	// GRPCEndpoint is the gRPC target the Gateway dials, in grpc.NewClient's
	// syntax: "localhost:50051" when the gateway runs beside the gRPC server,
	// "dns:///hello-headless.ns.svc.cluster.local:50051" when it runs as its
	// own Deployment (see the package documentation). ":50051" means
	// localhost:50051.
	GRPCEndpoint string

	// HTTPAddr is the address ListenAndServe and Run listen on, as for
	// net.Listen. Default ":8080".
	HTTPAddr string

	// DialOptions replace the kit's recommended client options,
	// server.ClientOptions(server.DefaultConfig()): a keepalive that the
	// server's ping policy accepts and round_robin over every address of the
	// endpoint. Set them, from server.ClientOptions of the server's own
	// Config for instance, when the gRPC server does not run with the kit's
	// defaults. Transport credentials come from TransportCredentials; a
	// grpc.WithTransportCredentials given here wins over it.
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

	// ConnectionMaxAge is how long a REST (HTTP/1.1 keep-alive or HTTP/2)
	// connection is reused before the Gateway answers on it with
	// "Connection: close" (a GOAWAY on HTTP/2), so that the client opens a
	// new one and kube-proxy picks a pod again. Each connection gets ±10 %
	// jitter, once, so clients do not reconnect in step. No request fails:
	// the client learns from the response itself not to reuse the
	// connection. Default 30 s, the gRPC default; Off (or server.Never)
	// never rotates. Allowed: 1 s or more.
	ConnectionMaxAge time.Duration

	// ReadHeaderTimeout bounds reading a request's headers; it is what stops
	// a client from holding connections open by sending headers slowly.
	// Default 10 s. Allowed: 1 s to 5 min; it cannot be turned off.
	ReadHeaderTimeout time.Duration

	// ReadTimeout bounds reading a whole request, headers and body, as
	// http.Server.ReadTimeout (which it sets). A body that does not arrive in
	// time gets 408. It does not cut streaming responses: net/http clears the
	// read deadline once the body has been read (TestStreamOutlivesTimeouts
	// checks that). Default 30 s; server.Never for no limit. Allowed: 1 s or
	// more.
	ReadTimeout time.Duration

	// WriteTimeout bounds each write of a response to the client, not the
	// whole response: a client that stops reading is cut after it, while a
	// server-streaming response (such as POST /v1/hi/stream) that keeps
	// flowing, or a call that is slow to answer, may last as long as it
	// needs, over HTTP/1.1 and HTTP/2. http.Server.WriteTimeout, which bounds
	// the whole response from the end of the request headers, would cut
	// every stream longer than it, so the Gateway leaves it at 0 and moves a
	// per-write deadline instead. Default 30 s; server.Never for no limit.
	// Allowed: 1 s or more. How long a call may run is for the client's
	// Grpc-Timeout header and the gRPC server to bound.
	WriteTimeout time.Duration

	// IdleTimeout closes a keep-alive connection that carried no request for
	// this long. Default 90 s: longer than the 60 s idle timeout of common
	// L7 load balancers and ingress controllers, so that they, not the
	// Gateway, close idle connections and never send a request on a
	// connection the Gateway is closing. server.Never for no limit. Allowed:
	// 1 s or more.
	IdleTimeout time.Duration

	// MaxHeaderBytes caps the size of a request's headers; larger requests
	// get 431. Default 64 KiB, room for large bearer tokens. Allowed: 1 KiB
	// to 16 MiB.
	MaxHeaderBytes int

	// MaxBodyBytes caps the size of a request's body; larger requests get
	// 413 with a grpc-gateway error body (code 8, RESOURCE_EXHAUSTED, as gRPC
	// uses for oversized messages). Default 4 MiB, the gRPC server's default
	// MaxRecvMsgSize. Allowed: 1 or more.
	MaxBodyBytes int64

	// ShutdownDelay is how long Run keeps serving, with /readyz already 503,
	// after its ctx ends and before it stops accepting connections, so that
	// Kubernetes removes the pod from the Service endpoints first. Only Run
	// uses it; Shutdown stops at once. Default 5 s, the gRPC server's
	// default; Off stops at once. Allowed: up to 10 min (the pod's
	// terminationGracePeriodSeconds must cover it).
	ShutdownDelay time.Duration

	// ShutdownTimeout bounds Run's graceful shutdown after the delay: open
	// requests that have not finished by then are cut. Default 20 s, the
	// gRPC server's default DrainTimeout. Allowed: 1 s or more.
	ShutdownTimeout time.Duration

	// Logger receives lifecycle events and net/http's own errors. Default
	// slog.Default().
	Logger *slog.Logger
}

// settings is a validated Config with every default applied.
type settings struct {
	fns         []RegisterFunc
	endpoint    string
	httpAddr    string
	dialOpts    []grpc.DialOption
	muxOpts     []runtime.ServeMuxOption
	openAPI     []byte
	routes      []route           // of openAPI, for Allow
	forward     map[string]string // canonical header key → metadata key, but Authorization
	forwardAuth bool              // Authorization is listed; grpc-gateway forwards it itself
	maxAge      time.Duration     // 0: no rotation
	readHeader  time.Duration
	read        time.Duration // server.Never: no limit
	write       time.Duration // server.Never: no limit
	idle        time.Duration // server.Never: no limit
	maxHeader   int
	maxBody     int64
	delay       time.Duration
	shutdownMax time.Duration
	log         *slog.Logger
}

// A ConfigError reports one invalid Config field: which field, the value it
// had, and what it must be instead.
type ConfigError struct {
	Field string // the Config field, e.g. "ConnectionMaxAge" or "Fns[1]"
	Value string // the rejected value, formatted
	Want  string // the allowed range, in words
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("rotor/gateway: %s = %s is invalid: want %s", e.Field, e.Value, e.Want)
}

// Validate reports every invalid or inconsistent field of c at once, as
// *ConfigError values joined with errors.Join, or nil when c is valid. New
// calls it for you.
func (c Config) Validate() error {
	_, err := c.settings()
	return err
}

// settings validates c and applies the defaults.
func (c Config) settings() (settings, error) {
	var errs []error
	bad := func(field string, value any, want string) {
		errs = append(errs, &ConfigError{Field: field, Value: fmtValue(value), Want: want})
	}
	s := settings{log: c.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}

	if c.Fn != nil {
		s.fns = append(s.fns, c.Fn)
	}
	for i, fn := range c.Fns {
		if fn == nil {
			bad(fmt.Sprintf("Fns[%d]", i), "nil", "a Register<Service>HandlerFromEndpoint function")
			continue
		}
		s.fns = append(s.fns, fn)
	}
	if c.Fn == nil && len(c.Fns) == 0 {
		bad("Fn", "nil", "a Register<Service>HandlerFromEndpoint function, in Fn or Fns")
	}

	port, endpoint := dialable(c.GrpcPort), dialable(c.GRPCEndpoint)
	switch {
	case port == "" && endpoint == "":
		bad("GRPCEndpoint", `""`, `the gRPC server to dial, e.g. GrpcPort ":50051" (localhost) or GRPCEndpoint "dns:///hello-headless:50051"`)
	case port != "" && endpoint != "" && port != endpoint:
		bad("GrpcPort", fmt.Sprintf("%q (GRPCEndpoint %q)", c.GrpcPort, c.GRPCEndpoint), "only one of GrpcPort and GRPCEndpoint, or both naming the same endpoint")
	case strings.ContainsAny(port+endpoint, " \t\r\n"):
		bad("GRPCEndpoint", fmt.Sprintf("%q", port+endpoint), "a gRPC target without white space")
	default:
		s.endpoint = cmp.Or(endpoint, port)
	}

	s.httpAddr = cmp.Or(c.HTTPAddr, DefaultHTTPAddr)
	if _, port, err := net.SplitHostPort(s.httpAddr); err != nil || !validPort(port) {
		bad("HTTPAddr", fmt.Sprintf("%q", c.HTTPAddr), `a listen address such as ":8080" or "127.0.0.1:8080"`)
	}

	creds := c.TransportCredentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	// Credentials first, so that a WithTransportCredentials in DialOptions wins.
	s.dialOpts = []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.DialOptions == nil {
		s.dialOpts = append(s.dialOpts, server.ClientOptions(server.DefaultConfig())...)
	} else {
		s.dialOpts = append(s.dialOpts, c.DialOptions...)
	}
	s.muxOpts = c.MuxOptions

	if c.OpenAPI != nil && !json.Valid(c.OpenAPI) {
		bad("OpenAPI", fmt.Sprintf("%d bytes", len(c.OpenAPI)), "a JSON document (the .swagger.json of protoc-gen-openapiv2), or nil")
	}
	s.openAPI = c.OpenAPI
	s.routes = routesOf(c.OpenAPI)

	fwd := c.ForwardHeaders
	if fwd == nil {
		fwd = DefaultForwardHeaders()
	}
	s.forward = make(map[string]string, len(fwd))
	for i, h := range fwd {
		if why := forwardable(h); why != "" {
			bad(fmt.Sprintf("ForwardHeaders[%d]", i), fmt.Sprintf("%q", h), why)
			continue
		}
		if k := textproto.CanonicalMIMEHeaderKey(h); k == "Authorization" {
			s.forwardAuth = true
		} else {
			s.forward[k] = strings.ToLower(h)
		}
	}

	switch age := c.ConnectionMaxAge; {
	case age == 0:
		s.maxAge = DefaultConnectionMaxAge
	case age < 0 || age == server.Never:
	case age < time.Second:
		bad("ConnectionMaxAge", age, "at least 1s (shorter makes every client reconnect constantly), 0 for the default 30s, or gateway.Off")
	default:
		s.maxAge = age
	}

	s.readHeader = cmp.Or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	if s.readHeader < time.Second || s.readHeader > 5*time.Minute {
		bad("ReadHeaderTimeout", c.ReadHeaderTimeout, "between 1s and 5m, or 0 for the default 10s; it cannot be turned off, as it is what stops slow-header (Slowloris) clients")
	}
	limit := func(field string, d, def time.Duration) time.Duration {
		switch {
		case d == 0:
			return def
		case d < time.Second:
			bad(field, d, fmt.Sprintf("at least 1s, 0 for the default %s, or server.Never for no limit", def))
		}
		return d
	}
	s.read = limit("ReadTimeout", c.ReadTimeout, DefaultReadTimeout)
	s.write = limit("WriteTimeout", c.WriteTimeout, DefaultWriteTimeout)
	s.idle = limit("IdleTimeout", c.IdleTimeout, DefaultIdleTimeout)

	s.maxHeader = cmp.Or(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	if s.maxHeader < 1<<10 || s.maxHeader > 16<<20 {
		bad("MaxHeaderBytes", c.MaxHeaderBytes, "between 1024 (1 KiB) and 16777216 (16 MiB), or 0 for the default 64 KiB")
	}
	s.maxBody = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	if s.maxBody < 1 {
		bad("MaxBodyBytes", c.MaxBodyBytes, "at least 1 byte, or 0 for the default 4 MiB")
	}

	s.delay = cmp.Or(c.ShutdownDelay, DefaultShutdownDelay)
	switch {
	case s.delay < 0:
		s.delay = 0
	case s.delay > maxShutdown:
		bad("ShutdownDelay", c.ShutdownDelay, "at most 10m (the pod's terminationGracePeriodSeconds must cover it), 0 for the default 5s, or gateway.Off")
	}
	s.shutdownMax = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	if s.shutdownMax < time.Second {
		bad("ShutdownTimeout", c.ShutdownTimeout, "at least 1s, or 0 for the default 20s")
	}
	return s, errors.Join(errs...)
}

// maxShutdown bounds ShutdownDelay, as the server's: a delay is there for
// endpoint removal to reach every node, which takes seconds, not hours.
const maxShutdown = 10 * time.Minute

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

// dialable turns a listen-style address such as ":50051" or "50051" into one
// a client can dial; anything else is returned as is.
func dialable(addr string) string {
	switch {
	case addr == "":
		return ""
	case addr[0] == ':':
		return "localhost" + addr
	case strings.Trim(addr, "0123456789") == "":
		return "localhost:" + addr
	}
	return addr
}

func fmtValue(v any) string {
	if d, ok := v.(time.Duration); ok && d == server.Never {
		return "Never"
	}
	return fmt.Sprint(v)
}
