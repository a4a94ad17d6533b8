package server

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// conn is one accepted connection and the *grpc.Server that serves it alone.
// Giving each connection its own grpc.Server is what lets the kit send GOAWAY
// to exactly the connections it chooses: GracefulStop is grpc-go's only public
// way to drain a connection, and it acts on a whole server.
type conn struct {
	srv    *Server
	gs     *grpc.Server
	opened time.Time
	calls  atomic.Uint64
	// internal marks a connection that carries peers' fair-share load
	// queries: it is neither counted as load nor rotated.
	internal atomic.Bool

	drainOnce sync.Once
	draining  chan struct{} // closed when the kit sends GOAWAY
	reason    Reason        // set before draining is closed

	readyOnce sync.Once
	ready     chan struct{} // closed once grpc-go has taken the connection
	handed    chan struct{} // closed once grpc.Server.Serve has returned

	closeOnce sync.Once
	closed    chan struct{}

	timerMu  sync.Mutex
	ageTimer *time.Timer
}

type connKey struct{}

// Draining returns a channel that is closed when the connection carrying the
// call of ctx is told to go away (by age, Rotate or shutdown). A long-lived
// stream should select on it and end cleanly, so that its client reopens the
// stream on a new connection before the grace period cuts it. For a ctx that
// is not a call of a Server, Draining returns nil, a channel that never
// closes.
func Draining(ctx context.Context) <-chan struct{} {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		return c.draining
	}
	return nil
}

// serveConn hands rc to a new per-connection grpc.Server.
func (s *Server) serveConn(rc net.Conn) {
	s.noteLocalAddr(rc.LocalAddr())
	c := &conn{
		srv:      s,
		opened:   time.Now(),
		draining: make(chan struct{}),
		ready:    make(chan struct{}),
		handed:   make(chan struct{}),
		closed:   make(chan struct{}),
	}
	opts := make([]grpc.ServerOption, 0, len(s.opts)+2)
	opts = append(opts, s.opts...)
	opts = append(opts,
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{c.unary}, s.set.unary...)...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{c.stream}, s.set.stream...)...),
	)
	c.gs = grpc.NewServer(opts...)
	s.registerAll(c.gs)

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.gs.Stop()
		rc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.connsWG.Add(1)
	s.mu.Unlock()
	s.obs.ConnOpened()

	// Serve returns as soon as the one connection is handed over; grpc-go
	// keeps serving it until the connection or the server ends.
	_ = c.gs.Serve(&oneConnListener{conn: &trackedConn{Conn: rc, c: c}, addr: rc.LocalAddr()})
	// A stop that lands while Serve is still running makes Serve wait for
	// the whole server to end, which would hold this accept loop for the
	// grace period; drains wait for this.
	close(c.handed)
}

// markReady is called on the connection's first write: grpc-go writes only
// once it has taken the connection past the point where a stop of its server
// would close it without a GOAWAY. Drains wait for it.
func (c *conn) markReady() {
	c.readyOnce.Do(func() {
		close(c.ready)
		s := c.srv
		if age := s.set.cfg.MaxConnectionAge; age != Never {
			c.timerMu.Lock()
			c.ageTimer = time.AfterFunc(jitter(age)-time.Since(c.opened), func() {
				s.drain(c, ReasonAge, s.set.cfg.MaxConnectionAgeGrace)
			})
			c.timerMu.Unlock()
		}
	})
}

// jitter spreads d by ±10 %, drawn once per connection, as grpc-go does for
// MaxConnectionAge, so that connections opened together do not all rotate
// together.
func jitter(d time.Duration) time.Duration {
	r := int64(d / 10)
	if r <= 0 || d > Never-time.Duration(r) {
		// Too short to spread, or so long that d+r would overflow into a
		// negative age, which would rotate at once.
		return d
	}
	return d + time.Duration(rand.Int64N(2*r)-r)
}

// drain sends GOAWAY to c once; calls still open after grace are cut. It
// reports whether this call started the drain.
func (s *Server) drain(c *conn, reason Reason, grace time.Duration) bool {
	started := false
	c.drainOnce.Do(func() {
		started = true
		c.reason = reason
		close(c.draining)
	})
	if !started {
		return false
	}
	c.stopAgeTimer()
	s.obs.ConnDraining(string(reason))
	go func() {
		// A server stopped before grpc-go has taken its connection closes it
		// without a GOAWAY, failing the client's first call: wait.
		select {
		case <-c.ready:
		case <-c.closed:
			return
		}
		select {
		case <-c.handed:
		case <-c.closed:
			return
		}
		stopped := make(chan struct{})
		go func() {
			c.gs.GracefulStop()
			close(stopped)
		}()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			c.gs.Stop()
			<-stopped
		case <-c.closed:
			// Closed by the peer (or forced) before the streams ended.
			<-stopped
		}
	}()
	return true
}

func (c *conn) stopAgeTimer() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.ageTimer != nil {
		c.ageTimer.Stop()
	}
}

// stop closes c at once, failing its open calls.
func (c *conn) stop() { c.gs.Stop() }

func (c *conn) onClosed() {
	c.closeOnce.Do(func() {
		s := c.srv
		c.stopAgeTimer()
		reason := ReasonClient
		select {
		case <-c.draining:
			reason = c.reason
		default:
		}
		s.obs.ConnClosed(string(reason), time.Since(c.opened), c.calls.Load())
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		close(c.closed)
		// Stop releases the per-connection server (its channelz entry); the
		// connection is already gone, so it returns at once. It runs apart
		// because we may be on one of grpc-go's own transport goroutines.
		go func() {
			c.gs.Stop()
			s.connsWG.Done()
		}()
	})
}

func (c *conn) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if info.FullMethod == loadMethod {
		// Only a connection that carries nothing but load queries is a
		// peer's; a client asking for load keeps being a client.
		if c.calls.Load() == 0 {
			c.internal.Store(true)
		}
		return h(ctx, req)
	}
	if c.internal.Load() {
		// A client's own call: a connection that also asks for load is not
		// a peer's, and must not escape rotation.
		c.internal.Store(false)
	}
	c.calls.Add(1)
	c.srv.calls.Add(1)
	return h(context.WithValue(ctx, connKey{}, c), req)
}

func (c *conn) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if c.internal.Load() {
		c.internal.Store(false)
	}
	c.calls.Add(1)
	c.srv.calls.Add(1)
	return h(srv, &connStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), connKey{}, c)})
}

type connStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *connStream) Context() context.Context { return s.ctx }

// trackedConn tells its conn when grpc-go closes the network connection.
type trackedConn struct {
	net.Conn
	c *conn
}

func (t *trackedConn) Write(b []byte) (int, error) {
	select {
	case <-t.c.ready:
	default:
		t.c.markReady()
	}
	return t.Conn.Write(b)
}

func (t *trackedConn) Close() error {
	err := t.Conn.Close()
	t.c.onClosed()
	return err
}

// errHandedOver ends grpc.Server.Serve after its one connection; it is not a
// net.Error, so Serve returns instead of retrying.
var errHandedOver = errors.New("rotor/server: connection handed over")

// oneConnListener yields one connection, then ends Serve.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	addr net.Addr
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conn; c != nil {
		l.conn = nil
		return c, nil
	}
	return nil, errHandedOver
}

// Close closes the connection if Serve never took it (the server was stopped
// first).
func (l *oneConnListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		err := l.conn.Close()
		l.conn = nil
		return err
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }
