package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rotorkit/rotor/server"
)

// limitBody enforces MaxBodyBytes on r's body. It answers 413 itself, and
// returns false, when the declared Content-Length is already too large; a
// body that grows too large while it is read, or arrives too slowly for the
// server's ReadTimeout, is answered by the error handler.
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	if r.ContentLength > g.set.maxBody {
		st.tooLarge.Store(true)
		g.writeError(w, r, g.errTooLarge())
		return false
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, g.set.maxBody), st: st}
	}
	return true
}

// limitedBody records why reading the body failed, for the error handler:
// grpc-gateway turns every decoding error into 400.
type limitedBody struct {
	io.ReadCloser
	st *reqState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			b.st.tooLarge.Store(true)
		case errors.Is(err, os.ErrDeadlineExceeded):
			b.st.timedOut.Store(true)
		}
	}
	return n, err
}

func (g *Gateway) errTooLarge() error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestEntityTooLarge,
		Err:        status.Errorf(codes.ResourceExhausted, "request body larger than %d bytes (MaxBodyBytes)", g.set.maxBody),
	}
}

func (g *Gateway) errBodyTimeout() error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestTimeout,
		Err:        status.Errorf(codes.DeadlineExceeded, "request not received within %s (ReadTimeout)", g.set.read),
	}
}

// errorHandler is the mux's error handler: grpc-gateway's default, except
// that a body that was too large or too slow gets 413 or 408 instead of the
// 400 grpc-gateway reports for any body it could not decode, and that a
// message that is not UTF-8 is repaired rather than answered with 500.
func (g *Gateway) errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	err = validUTF8(err)
	if st := stateOf(ctx); st != nil {
		switch {
		case st.tooLarge.Load():
			err = g.errTooLarge()
		case st.timedOut.Load():
			err = g.errBodyTimeout()
		}
		if st.tooLarge.Load() || st.timedOut.Load() {
			// The rest of the body is still on the connection.
			w.Header().Set("Connection", "close")
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// routingError is the mux's routing error handler. grpc-gateway's default
// turns a wrong method into codes.Unimplemented, which its error handler
// answers with 501; HTTP wants 405, with an Allow header when the OpenAPI
// document tells the path's methods.
func (g *Gateway) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	code := codes.Internal
	switch httpStatus {
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	case http.StatusNotFound:
		code = codes.NotFound
	case http.StatusMethodNotAllowed:
		code = codes.Unimplemented
		if methods := allow(g.set.routes, r.URL.Path); methods != "" {
			w.Header().Set("Allow", methods)
		}
	}
	runtime.HTTPError(ctx, mux, m, w, r, &runtime.HTTPStatusError{
		HTTPStatus: httpStatus,
		Err:        status.Error(code, http.StatusText(httpStatus)),
	})
}

// writeError answers r with err through the mux's error handler, in the
// grpc-gateway error shape ({"code":…, "message":…, "details":[]}).
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	_, out := runtime.MarshalerForRequest(g.mux, r)
	runtime.HTTPError(r.Context(), g.mux, out, w, r, err)
}

func methodNotAllowed(allow string) error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        status.Error(codes.Unimplemented, fmt.Sprintf("%s; allowed: %s", http.StatusText(http.StatusMethodNotAllowed), allow)),
	}
}

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
	if g.set.write == server.Never {
		return w
	}
	dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: g.set.write, perWrite: r.ProtoMajor >= 2}
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
