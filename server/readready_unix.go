//go:build unix

package server

import (
	"io"
	"syscall"

	"google.golang.org/grpc/mem"
)

// readOnReady: see tcpFrameWriter.
const readOnReady = true

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
