package gateway

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	_ "google.golang.org/grpc/health" // registers client-side health checking
)

// readyCheckTimeout bounds one readiness check: below the 1 s default
// timeoutSeconds of a Kubernetes probe, so a backend that is still connecting
// reads as not ready instead of as a probe timeout.
const readyCheckTimeout = 900 * time.Millisecond

// healthServiceConfig is the service config of the readiness connection:
// round_robin with client-side health checking. grpc-go then keeps a gRPC
// health Watch stream (service "") open to every backend and counts a backend
// as connected only while it reports SERVING, so the connection is READY
// exactly while at least one backend serves: the one gRPC server in the pod
// when the endpoint is localhost, any pod of a headless Service otherwise.
const healthServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// reconnectBackoff is the Gateway's backoff between two connection
// attempts to the gRPC server: short, so that REST calls and readiness
// recover within a second of the server's return. An attempt is one TCP (and
// TLS) handshake, cheap for a gateway beside its server on localhost and for
// one that dials a few pods.
var reconnectBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}

// gatewayDialOptions are added to every connection of the Gateway: the
// short backoff, and no idle mode, so that a connection is always as
// connected as it can be and /readyz, which reads it, tells the truth.
func gatewayDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnectBackoff, MinConnectTimeout: 20 * time.Second}),
		grpc.WithIdleTimeout(0),
	}
}

// dialHealth opens the Gateway's own connection for readiness, with the same
// options as the REST connections plus client-side health checking: grpc-go
// keeps a gRPC health Watch stream (service "") open to every backend and
// counts a backend as connected only while it reports SERVING. The REST
// connections do not health-check: during the gRPC server's ShutdownDelay the
// server still serves, and REST calls should keep reaching it while
// readiness already fails.
func (g *Gateway) dialHealth() error {
	opts := append(slices.Clip(g.set.dialOpts), gatewayDialOptions()...)
	opts = append(opts, grpc.WithDefaultServiceConfig(healthServiceConfig))
	conn, err := grpc.NewClient(g.set.endpoint, opts...)
	if err != nil {
		return err
	}
	conn.Connect()
	g.healthConn = conn
	return nil
}

// restConn is one REST connection: the grpc.ClientConn a register function
// dials, learnt from its first call (the generated function does not hand
// it out), so that /readyz follows the path REST calls take. Before its
// first call the connection is idle, and that call connects it.
type restConn struct {
	cc atomic.Pointer[grpc.ClientConn]
}

func (rc *restConn) note(cc *grpc.ClientConn) {
	if rc.cc.Load() != cc {
		rc.cc.Store(cc)
	}
}

// unary and stream learn the connection and refuse calls whose REST body
// had data after its message (see strictJSON).
func (rc *restConn) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	rc.note(cc)
	if st := stateOf(ctx); st != nil && st.trailing.Load() {
		return errTrailing
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (rc *restConn) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	rc.note(cc)
	// A client-streaming call reads several messages from one body.
	if st := stateOf(ctx); st != nil && !desc.ClientStreams && st.trailing.Load() {
		return nil, errTrailing
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// serveHealthz answers liveness: 200 while the process serves HTTP at all. It
// does not look at the gRPC server, so that a backend outage makes the
// gateway unready, not restarted.
func (g *Gateway) serveHealthz(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(g, w, r) {
		return
	}
	writeProbe(w, r, http.StatusOK, `{"status":"ok"}`)
}

// serveReadyz answers readiness: 200 while a backend of the gRPC endpoint
// reports SERVING through the gRPC health protocol and every REST
// connection that has carried a call is READY; 503 when no backend serves
// (as during a rotor server's shutdown), when REST calls could not be sent,
// and once the Gateway itself is shutting down.
func (g *Gateway) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(g, w, r) {
		return
	}
	if g.stopping.Load() {
		writeProbe(w, r, http.StatusServiceUnavailable, `{"status":"shutting down"}`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyCheckTimeout)
	defer cancel()
	if state := g.backendState(ctx); state != connectivity.Ready {
		writeProbe(w, r, http.StatusServiceUnavailable, `{"status":"no backend serving","state":"`+state.String()+`"}`)
		return
	}
	for _, rc := range g.rest {
		cc := rc.cc.Load()
		if cc == nil {
			continue
		}
		if state := settle(ctx, cc); state != connectivity.Ready {
			writeProbe(w, r, http.StatusServiceUnavailable, `{"status":"REST connection not ready","state":"`+state.String()+`"}`)
			return
		}
	}
	writeProbe(w, r, http.StatusOK, `{"status":"SERVING"}`)
}

// backendState waits, until ctx ends, for the readiness connection to
// settle as READY (a backend serves) or TRANSIENT_FAILURE (none does, or none
// can be reached), and returns the state it is in then.
func (g *Gateway) backendState(ctx context.Context) connectivity.State {
	return settle(ctx, g.healthConn)
}

// settle waits, until ctx ends, for cc to be READY or TRANSIENT_FAILURE, and
// returns the state it is in then. A connection in TRANSIENT_FAILURE is told
// to try again at once: a probe is a good moment to learn that the backend
// is back.
func settle(ctx context.Context, cc *grpc.ClientConn) connectivity.State {
	for {
		s := cc.GetState()
		switch s {
		case connectivity.TransientFailure:
			cc.ResetConnectBackoff()
			return s
		case connectivity.Ready, connectivity.Shutdown:
			return s
		case connectivity.Idle:
			cc.Connect()
		}
		if !cc.WaitForStateChange(ctx, s) {
			return s
		}
	}
}

// probeMethod allows GET and HEAD on the probe and document paths.
func probeMethod(g *Gateway, w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	g.writeError(w, r, methodNotAllowed("GET, HEAD"))
	return false
}

func writeProbe(w http.ResponseWriter, r *http.Request, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body + "\n"))
	}
}
