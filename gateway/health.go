package gateway

import (
	"context"
	"net/http"
	"slices"
	"time"

	"google.golang.org/grpc"
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

// dialHealth opens the Gateway's own connection for readiness, with the same
// options as the REST handlers' connections plus client-side health checking,
// and without idle mode, so that a probe reads a state kept current by the
// Watch streams. The handlers' connections do not health-check: during the
// gRPC server's ShutdownDelay the server still serves, and REST calls should
// keep reaching it while readiness already fails.
func (g *Gateway) dialHealth() error {
	opts := append(slices.Clip(g.set.dialOpts),
		grpc.WithDefaultServiceConfig(healthServiceConfig),
		grpc.WithIdleTimeout(0))
	conn, err := grpc.NewClient(g.set.endpoint, opts...)
	if err != nil {
		return err
	}
	conn.Connect()
	g.healthConn = conn
	return nil
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
// reports SERVING through the gRPC health protocol, 503 when none does (for
// instance during a rotor server's shutdown, which sets NOT_SERVING first),
// when none can be reached, and once the Gateway itself is shutting down.
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
	writeProbe(w, r, http.StatusOK, `{"status":"SERVING"}`)
}

// backendState waits, until ctx ends, for the readiness connection to settle
// as READY (a backend serves) or TRANSIENT_FAILURE (none does, or none can be
// reached), and returns the state it is in then.
func (g *Gateway) backendState(ctx context.Context) connectivity.State {
	for {
		s := g.healthConn.GetState()
		switch s {
		case connectivity.Ready, connectivity.TransientFailure, connectivity.Shutdown:
			return s
		case connectivity.Idle:
			g.healthConn.Connect()
		}
		if !g.healthConn.WaitForStateChange(ctx, s) {
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
