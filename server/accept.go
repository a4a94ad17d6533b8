package server

import (
	"net"
	"time"

	"github.com/rotorkit/rotor/internal/jitter"
)

// kitListener is the listener grpc-go's Serve accepts from: it admits each
// connection (MaxConnections), records it, and hands grpc-go the connection
// the kit can write GOAWAY frames into.
type kitListener struct {
	net.Listener
	s *Server
}

func (l *kitListener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if nc := l.s.admit(raw); nc != nil {
			return nc, nil
		}
	}
}

// admit records raw and returns what grpc-go should serve, or nil when raw
// was refused (and closed).
func (s *Server) admit(raw net.Conn) net.Conn {
	s.noteLocalAddr(raw.LocalAddr())
	if s.cfg.KeepaliveTime != Off {
		if err := setUserTimeout(raw, s.cfg.KeepaliveTimeout); err != nil && s.userTimeoutFailed.CompareAndSwap(false, true) {
			s.log.Warn("cannot set TCP_USER_TIMEOUT on accepted connections; a vanished client is then found by keepalive pings alone", "error", err)
		}
	}
	c := &conn{
		srv:      s,
		raw:      raw,
		opened:   time.Now(),
		draining: make(chan struct{}),
	}
	if !s.register(c) {
		_ = raw.Close()
		s.refused()
		return nil
	}
	if s.tlsOn {
		s.obs.ConnOpened()
		s.sendOnAtAccept(c)
		// kitCreds attaches the frameWriter after the handshake.
		return &handshakeConn{Conn: raw, c: c}
	}
	nc := newConnWriter(raw, c)
	s.attach(c, frameWriterOf(nc))
	s.obs.ConnOpened()
	s.sendOnAtAccept(c)
	return nc
}

// sendOnAtAccept sends c on at once when fair share's admission says so
// (see admission.go): its GOAWAY follows the server's SETTINGS (under TLS,
// the handshake), before the client's first call.
func (s *Server) sendOnAtAccept(c *conn) {
	if s.fair == nil || !s.fair.admit(c, time.Now()) {
		return
	}
	if c.goAway(ReasonFairShare, on(s.cfg.MaxConnectionAgeGrace)) {
		c.mu.Lock()
		c.sentAtAccept = true
		c.mu.Unlock()
	}
}

// register adds c to the open connections unless MaxConnections are open;
// one lock makes the count and the registration a single step across
// listeners, so the cap is exact.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit := s.cfg.MaxConnections; limit != Off && len(s.conns) >= limit {
		return false
	}
	if s.draining {
		c.lameDuck = true
		if s.lameDucks.Add(1) == 1 {
			s.log.Info("a client came back during the drain (its address list still holds this pod); serving it as a lame duck",
				"remote", c.raw.RemoteAddr().String())
		}
	}
	s.conns[c] = struct{}{}
	s.lastChange = c.opened.UnixNano()
	s.byAddr.Store(c.raw.RemoteAddr(), c)
	s.poke()
	return true
}

// attach gives c the frameWriter its GOAWAY frames go to and starts its
// clock: age rotation while the server serves, the lame-duck nudge while it
// drains.
func (s *Server) attach(c *conn, fw *frameWriter) {
	// The frameWriter first, the server's state second: a drain that
	// begins in between finds the frameWriter and sends the GOAWAY itself.
	c.fw.Store(fw)
	s.mu.Lock()
	lameDuck := s.draining || c.lameDuck
	s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.early != nil {
		fw.goAway(c.early)
		c.early = nil
	}
	if c.state != connServing {
		return
	}
	switch {
	case lameDuck:
		c.ageTimer = time.AfterFunc(jitter.Apply(lameDuckAge), func() { s.goAwayLameDuck(c) })
	case s.cfg.MaxConnectionAge != Off:
		c.ageTimer = time.AfterFunc(jitter.Apply(s.cfg.MaxConnectionAge)-time.Since(c.opened), func() {
			if !s.isShuttingDown() {
				c.goAway(ReasonAge, on(s.cfg.MaxConnectionAgeGrace))
			}
		})
	}
}

// forget removes a gone connection.
func (s *Server) forget(c *conn) {
	s.byAddr.CompareAndDelete(c.raw.RemoteAddr(), c)
	s.mu.Lock()
	delete(s.conns, c)
	s.lastChange = time.Now().UnixNano()
	s.poke()
	s.mu.Unlock()
}

// poke wakes a drain that waits for connections to come and go; s.mu held.
func (s *Server) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Server) isShuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// snapshot returns the open connections.
func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// noteLocalAddr records the local address of an accepted connection: the
// pod IP, behind a ClusterIP's DNAT, which the peer watcher must not count
// as a new peer.
func (s *Server) noteLocalAddr(a net.Addr) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP.IsUnspecified() {
		return
	}
	ip := ta.IP.String()
	s.localMu.Lock()
	defer s.localMu.Unlock()
	if _, ok := s.localIPs[ip]; !ok && len(s.localIPs) < 64 {
		s.localIPs[ip] = struct{}{}
	}
}

// isLocalAddr reports whether ip is an address this server was reached on.
func (s *Server) isLocalAddr(ip string) bool {
	s.localMu.Lock()
	defer s.localMu.Unlock()
	_, ok := s.localIPs[ip]
	return ok
}
