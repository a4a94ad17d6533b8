package server

import (
	"encoding/binary"
	"net"
	"sync"
)

// HTTP/2 framing (RFC 9113, section 4.1): a 9-byte header (24-bit payload
// length, type, flags, 31-bit stream id) and the payload.
const (
	frameHeaderLen  = 9
	frameSettings   = 0x4
	frameGoAway     = 0x7
	maxLastStreamID = 1<<31 - 1
)

// goAwayFrame returns a GOAWAY frame (RFC 9113, section 6.8) with error code
// NO_ERROR, the largest last-stream id and debug as its debug data.
//
// The largest id tells the client that every stream it has opened, or opens
// before it reads the frame, may still be processed, as grpc-go's own first
// GOAWAY of a graceful close does. The kit never refuses a stream (grpc-go
// serves whatever arrives), so it needs no second GOAWAY with the real last
// id: the client opens no new stream on the connection, moves new calls to a
// new connection, and closes this one when its last stream ends (grpc-go,
// grpc-js and C-core all do); the grace bounds a client that does not.
func goAwayFrame(debug string) []byte {
	n := 8 + len(debug)
	b := make([]byte, frameHeaderLen+n)
	b[0], b[1], b[2] = byte(n>>16), byte(n>>8), byte(n)
	b[3] = frameGoAway
	binary.BigEndian.PutUint32(b[9:], maxLastStreamID)
	binary.BigEndian.PutUint32(b[13:], 0) // NO_ERROR
	copy(b[17:], debug)
	return b
}

// frameWriter is the connection grpc-go's server transport writes to. It
// follows the HTTP/2 frames in the outgoing bytes, so that the kit can put a
// GOAWAY frame of its own between two of them: grpc-go has no public API to
// send GOAWAY on one connection, and writing whole frames at frame
// boundaries is all HTTP/2 asks of a writer. grpc-go writes through a buffer
// that may flush in the middle of a frame, so a GOAWAY asked for then waits
// for the boundary, which the next write reaches.
//
// It sits above TLS (see kitCreds), where the stream is plain HTTP/2.
type frameWriter struct {
	net.Conn
	c *conn

	mu      sync.Mutex
	hdr     [frameHeaderLen]byte
	hdrN    int    // bytes of the current frame's header written so far
	left    int    // bytes of the current frame's payload still to come
	started bool   // the server's first frame (SETTINGS) is written whole
	opaque  bool   // the bytes are not HTTP/2 frames: never write into them
	pending []byte // a GOAWAY waiting for a frame boundary
	sent    bool   // a GOAWAY was written
}

func newFrameWriter(nc net.Conn, c *conn) *frameWriter {
	return &frameWriter{Conn: nc, c: c}
}

// atBoundary reports whether the bytes written so far end with a whole frame
// after the server's first one.
func (w *frameWriter) atBoundary() bool {
	return w.started && w.hdrN == 0 && w.left == 0
}

// goAway writes frame now if the stream is at a frame boundary, or at the
// next one. It reports false when it never can: the stream is not HTTP/2 as
// the kit sees it (credentials given as grpc.Creds), or a GOAWAY was asked
// for already.
func (w *frameWriter) goAway(frame []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.opaque || w.sent || w.pending != nil {
		return false
	}
	if !w.atBoundary() {
		w.pending = frame
		return true
	}
	w.sent = true
	// An error here is the connection's end, which grpc-go sees on its
	// next write or read.
	_, _ = w.Conn.Write(frame)
	return true
}

// Write passes p on, following its frames, with a pending GOAWAY put in at
// the first frame boundary. It returns the number of p's bytes written.
func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.opaque || (w.pending == nil && w.started) {
		// The usual case: nothing to put in, so only follow the frames.
		w.follow(p)
		return w.Conn.Write(p)
	}
	written := 0
	for i := 0; ; {
		if w.pending != nil && w.atBoundary() {
			if i > written {
				n, err := w.Conn.Write(p[written:i])
				written += n
				if err != nil {
					return written, err
				}
			}
			frame := w.pending
			w.pending, w.sent = nil, true
			if _, err := w.Conn.Write(frame); err != nil {
				return written, err
			}
		}
		if i == len(p) || w.opaque {
			break
		}
		i += w.step(p[i:])
	}
	n, err := w.Conn.Write(p[written:])
	return written + n, err
}

// follow advances the frame state over p.
func (w *frameWriter) follow(p []byte) {
	for len(p) > 0 && !w.opaque {
		p = p[w.step(p):]
	}
}

// step consumes bytes of p up to the end of the current header or payload,
// whichever comes first, and returns how many.
func (w *frameWriter) step(p []byte) int {
	if w.left > 0 {
		n := min(w.left, len(p))
		w.left -= n
		if w.left == 0 {
			w.started = true
		}
		return n
	}
	n := copy(w.hdr[w.hdrN:], p)
	w.hdrN += n
	if w.hdrN == frameHeaderLen {
		w.hdrN = 0
		w.left = int(w.hdr[0])<<16 | int(w.hdr[1])<<8 | int(w.hdr[2])
		if !w.started && (w.hdr[3] != frameSettings || binary.BigEndian.Uint32(w.hdr[5:])&maxLastStreamID != 0) {
			// An HTTP/2 server's first frame is SETTINGS on stream 0;
			// anything else (a TLS record under foreign credentials) is
			// not a stream the kit may write into.
			w.opaque = true
			if w.pending != nil {
				// The GOAWAY asked for cannot go out: its grace must not
				// cut the calls (after w.mu, which goAway takes after c.mu).
				w.pending = nil
				go w.c.keepOpen()
			}
			w.c.srv.warnOpaque(w.c)
			return n
		}
		if w.left == 0 {
			w.started = true
		}
	}
	return n
}

// Close closes the connection and tells the kit it is gone.
func (w *frameWriter) Close() error {
	err := w.Conn.Close()
	w.c.closed()
	return err
}
