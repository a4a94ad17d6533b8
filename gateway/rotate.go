package gateway

import (
	"context"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// connAge is when a REST connection stops being reused.
type connAge struct{ expires time.Time }

type connAgeKey struct{}

// ConnContext records when a connection was accepted, for ConnectionMaxAge
// rotation. The Gateway's own http.Server uses it; set it as the
// ConnContext of your http.Server when you serve Handler yourself:
//
//	hs := &http.Server{Handler: gw.Handler(), ConnContext: gw.ConnContext}
//
// Without it, connections are not rotated.
func (g *Gateway) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	if g.set.maxAge <= 0 {
		return ctx
	}
	return context.WithValue(ctx, connAgeKey{}, &connAge{expires: time.Now().Add(jitter(g.set.maxAge))})
}

// rotate marks the response to r as the last on its connection once the
// connection is older than its age. net/http then closes an HTTP/1.1
// connection after the response, and sends GOAWAY on an HTTP/2 one. The
// client reads the header with the response, so it never sends another
// request on a connection that is about to close: no request fails, unlike
// closing idle connections, which races with the client's next request.
func rotate(w http.ResponseWriter, r *http.Request) {
	if a, ok := r.Context().Value(connAgeKey{}).(*connAge); ok && time.Now().After(a.expires) {
		w.Header().Set("Connection", "close")
	}
}

// jitter spreads d by ±10 %, drawn once per connection as grpc-go and the
// rotor server do, so that connections opened together do not all close
// together.
func jitter(d time.Duration) time.Duration {
	r := int64(d / 10)
	if r <= 0 || d > time.Duration(math.MaxInt64-r) {
		// Too short to spread, or so long that d+r would overflow into a
		// negative age, which would close every connection at once.
		return d
	}
	return d + time.Duration(rand.Int64N(2*r+1)-r)
}
