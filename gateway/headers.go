package gateway

import (
	"context"
	"crypto/rand"
	"net/http"
	"sync/atomic"

	"google.golang.org/grpc/metadata"
)

// requestIDKey is the metadata key of the request id on the gRPC side.
const requestIDKey = "x-request-id"

// maxRequestIDLen bounds a client-supplied request id: long enough for a
// UUID, a W3C trace id or a load balancer's id, short enough for log lines.
const maxRequestIDLen = 128

// reqState is what the Gateway knows about one request; the mux's error
// handler reads it from the request context.
type reqState struct {
	id       string
	conn     http.ResponseWriter // as net/http gave it, unwrapped by tracing
	tooLarge atomic.Bool         // the body passed MaxBodyBytes
	timedOut atomic.Bool         // the body did not arrive within ReadTimeout
	trailing atomic.Bool         // the JSON body had data after its message
}

type reqKey struct{}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(reqKey{}).(*reqState)
	return st
}

// RequestID returns the request id of a request the Gateway is serving, from
// the request's context (or a context derived from it, such as the one
// grpc-gateway passes to its options), or "" for any other context. On the
// gRPC server the id is in the incoming metadata as "x-request-id".
func RequestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// requestID returns the client's X-Request-Id when it is well formed, a new
// random id otherwise.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); validRequestID(id) {
		return id
	}
	// 26 base32 characters, 130 random bits: unique without coordination.
	return rand.Text()
}

// validRequestID accepts 1 to maxRequestIDLen visible ASCII characters: what
// is safe to copy into gRPC metadata, a response header and a log line.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// matchHeader is the mux's incoming header matcher: it forwards the
// ForwardHeaders under their lower-case names. grpc-gateway calls it with
// canonical header keys, and forwards Authorization before and regardless of
// it, so Authorization is not in the map: listing it here would send it
// twice.
func (g *Gateway) matchHeader(key string) (string, bool) {
	md, ok := g.set.forward[key]
	return md, ok
}

// requestIDMetadata adds the request id to the outgoing metadata. grpc-gateway
// lets annotators replace header values under the same key, so a client
// cannot smuggle in a second x-request-id.
func requestIDMetadata(ctx context.Context, _ *http.Request) metadata.MD {
	if st := stateOf(ctx); st != nil {
		return metadata.MD{requestIDKey: []string{st.id}}
	}
	return nil
}

// stripAuthorization removes, on a copy of r's headers, the one header that
// grpc-gateway forwards whatever the matcher says. It is called when
// Authorization is not in ForwardHeaders.
func stripAuthorization(r *http.Request) {
	if _, ok := r.Header["Authorization"]; ok {
		r.Header = r.Header.Clone()
		r.Header.Del("Authorization")
	}
}
