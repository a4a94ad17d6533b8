package server

import (
	"io"
	"net"
	"syscall"

	"google.golang.org/grpc/mem"
)

// tcpFrameWriter is the frameWriter of a plaintext TCP connection. It also
// offers grpc-go the read path grpc-go uses for a bare *net.TCPConn: wait
// until the socket is readable, and only then take a buffer from grpc-go's
// pool and read into it. grpc-go recognises the method by its signature (an
// optional interface of its transport); without it, grpc-go would give the
// wrapped connection a 32 KiB read buffer of its own for its whole life,
// which more than doubles what an idle connection costs.
type tcpFrameWriter struct {
	*frameWriter
	raw syscall.RawConn
}

// newConnWriter returns the frameWriter for nc: the TCP kind when nc is a
// plain TCP connection whose socket can be read directly.
func newConnWriter(nc net.Conn, c *conn) net.Conn {
	fw := newFrameWriter(nc, c)
	if tc, ok := nc.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			return &tcpFrameWriter{frameWriter: fw, raw: raw}
		}
	}
	return fw
}

// ReadOnReady waits until the socket has data, then reads up to bufSize
// bytes into a buffer from pool, and returns it with the count. The caller
// returns the buffer to pool. A closed peer is io.EOF.
func (w *tcpFrameWriter) ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	var (
		buf  *[]byte
		n    int
		rerr error
	)
	err := w.raw.Read(func(fd uintptr) bool {
		buf = pool.Get(bufSize)
		n, rerr = syscall.Read(int(fd), *buf)
		if rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK {
			pool.Put(buf)
			buf = nil
			return false // not readable yet: the runtime poller waits
		}
		return true
	})
	switch {
	case err != nil:
		rerr = err
	case rerr == nil && n == 0:
		rerr = io.EOF
	}
	if rerr != nil {
		if buf != nil {
			pool.Put(buf)
		}
		return nil, 0, rerr
	}
	return buf, n, nil
}

// frameWriterOf returns the frameWriter of a connection newConnWriter made.
func frameWriterOf(nc net.Conn) *frameWriter {
	if t, ok := nc.(*tcpFrameWriter); ok {
		return t.frameWriter
	}
	return nc.(*frameWriter)
}
