package gateway

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/rotorkit/rotor/internal/jitter"
	"github.com/rotorkit/rotor/server"
)

// connAge is when a REST connection stops being reused.
type connAge struct{ expires time.Time }

type connAgeKey struct{}

// ConnContext records when a connection was accepted, for MaxConnectionAge
// rotation. The Gateway's own http.Server uses it; set it as the
// ConnContext of your http.Server when you serve Handler yourself:
//
//	hs := &http.Server{Handler: gw.Handler(), ConnContext: gw.ConnContext}
//
// Without it, connections are not rotated.
func (g *Gateway) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	if g.set.MaxConnectionAge == server.Off {
		return ctx
	}
	return context.WithValue(ctx, connAgeKey{}, &connAge{expires: time.Now().Add(jitter.Apply(g.set.MaxConnectionAge))})
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
