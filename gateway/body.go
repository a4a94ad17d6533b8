package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// limitBody enforces MaxBodyBytes on r's body. It answers 413 itself, and
// returns false, when the declared Content-Length is already too large; a
// body that grows too large while it is read, or arrives too slowly for the
// server's ReadTimeout, is answered by the error handler.
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	if r.ContentLength > g.set.MaxBodyBytes {
		st.tooLarge.Store(true)
		g.writeError(w, r, g.errTooLarge())
		return false
	}
	if r.Body != nil && r.Body != http.NoBody {
		// net/http's own writer, so that the reader can tell net/http to
		// close the connection when the body is too large.
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(st.conn, r.Body, g.set.MaxBodyBytes), st: st}
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
		Err:        status.Errorf(codes.ResourceExhausted, "request body larger than %d bytes (MaxBodyBytes)", g.set.MaxBodyBytes),
	}
}

func (g *Gateway) errBodyTimeout() error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestTimeout,
		Err:        status.Errorf(codes.DeadlineExceeded, "request not received within %s (ReadTimeout)", g.set.ReadTimeout),
	}
}

// strictJSON is grpc-gateway's default marshaler, with a decoder that
// notices data after the first JSON value of a body: grpc-gateway decodes
// one message for a unary or server-streaming call and ignores the rest,
// so {"toWho":"a"}{"x":1} would pass for {"toWho":"a"}. The decoder only
// records it (a client-streaming call reads several values from one body);
// refuseTrailingUnary and refuseTrailingStream refuse the calls that take
// one message.
func strictJSON() runtime.Marshaler {
	def, _ := runtime.MarshalerForRequest(runtime.NewServeMux(), &http.Request{Header: http.Header{}})
	return &strictMarshaler{def}
}

type strictMarshaler struct{ runtime.Marshaler }

func (m *strictMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := m.Marshaler.NewDecoder(r)
	lb, ok := r.(*limitedBody)
	dw, isJSON := d.(runtime.DecoderWrapper)
	if !ok || !isJSON {
		return d
	}
	return &trailingDecoder{Decoder: d, json: dw.Decoder, st: lb.st}
}

// trailingDecoder records in the request's state whether its body holds
// anything but white space after the value it decoded.
type trailingDecoder struct {
	runtime.Decoder
	json *json.Decoder
	st   *reqState
}

func (d *trailingDecoder) Decode(v any) error {
	if err := d.Decoder.Decode(v); err != nil {
		return err
	}
	// More peeks past white space for a next value. A stray ']' or '}' is
	// not one, but stays in the decoder's buffer.
	more := d.json.More()
	if !more {
		rest, _ := io.ReadAll(d.json.Buffered())
		more = len(bytesTrimSpace(rest)) > 0
	}
	d.st.trailing.Store(more)
	return nil
}

func bytesTrimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}
