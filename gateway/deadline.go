package gateway

import (
	"net/http"
	"time"

	"github.com/rotorkit/rotor/server"
)

// boundWrites gives every write of the response WriteTimeout to complete, so
// that a client that stops reading cannot hold the handler forever, while a
// stream that keeps flowing is never cut.
//
// On HTTP/1.1 a write deadline is the socket's and only matters while a
// write is under way, so one is set at once (it also covers net/http's own
// "100 Continue" and a response written without an explicit Write) and moved
// before each write. On HTTP/2 it is a timer on the stream that resets it
// when it fires, writing or not: there the deadline is set just before each
// write or flush and cleared after it, so that neither a slow call nor a
// quiet stream is cut.
func (g *Gateway) boundWrites(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if g.set.WriteTimeout == server.Off {
		return w
	}
	dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: g.set.WriteTimeout, perWrite: r.ProtoMajor >= 2}
	if !dw.perWrite && dw.extend() != nil {
		return w // no deadlines on this writer
	}
	return dw
}

// deadlineWriter moves the connection's write deadline before each write and
// flush. Through Unwrap, http.ResponseController (which grpc-gateway uses to
// flush stream messages) reaches the writer underneath.
type deadlineWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	d        time.Duration
	perWrite bool // clear the deadline after each write (HTTP/2)
}

func (w *deadlineWriter) extend() error { return w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

// done ends the deadline of one write on HTTP/2.
func (w *deadlineWriter) done() {
	if w.perWrite {
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
}

// finish bounds what net/http still sends once the handler has returned (a
// small response waits in its buffer until then): on HTTP/1.1 the last
// write's deadline already does; on HTTP/2 one more is set, and the stream's
// end stops its timer.
func (w *deadlineWriter) finish() {
	if w.perWrite {
		_ = w.extend()
	}
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.extend()
	defer w.done()
	return w.ResponseWriter.Write(p)
}

// FlushError flushes buffered data to the client, within the write deadline.
func (w *deadlineWriter) FlushError() error {
	_ = w.extend()
	defer w.done()
	return w.rc.Flush()
}

// Flush implements http.Flusher for code that asserts it directly.
func (w *deadlineWriter) Flush() { _ = w.FlushError() }

// Unwrap returns the writer underneath, for http.ResponseController.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
