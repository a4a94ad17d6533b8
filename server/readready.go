package server

import (
	"net"
	"syscall"
)

// tcpFrameWriter is the frameWriter of a plaintext TCP connection. It also
// offers grpc-go the read path grpc-go uses for a bare *net.TCPConn: wait
// until the socket is readable, and only then take a buffer from grpc-go's
// pool and read into it. grpc-go recognises the method by its signature (an
// optional interface of its transport); without it, grpc-go would give the
// wrapped connection a 32 KiB read buffer of its own for its whole life,
// which more than doubles what an idle connection costs.
//
// Only on Unix (readOnReady), where Go's sockets are non-blocking and its
// poller says when one is readable; on Windows a connection keeps grpc-go's
// read buffer. grpc-go 1.85 reads a bare *net.TCPConn so on Linux only: on
// macOS and the BSDs the kit reads so where plain grpc-go does not (the
// memory figures are Linux's; there it is not measured).
type tcpFrameWriter struct {
	*frameWriter
	raw syscall.RawConn
}

// newConnWriter returns the frameWriter for nc: the TCP kind when nc is a
// plain TCP connection whose socket can be read directly (on Unix; see
// tcpFrameWriter).
func newConnWriter(nc net.Conn, c *conn) net.Conn {
	fw := newFrameWriter(nc, c)
	if tc, ok := nc.(*net.TCPConn); ok && readOnReady {
		if raw, err := tc.SyscallConn(); err == nil {
			return &tcpFrameWriter{frameWriter: fw, raw: raw}
		}
	}
	return fw
}

// frameWriterOf returns the frameWriter of a connection newConnWriter made.
func frameWriterOf(nc net.Conn) *frameWriter {
	if t, ok := nc.(*tcpFrameWriter); ok {
		return t.frameWriter
	}
	return nc.(*frameWriter)
}
