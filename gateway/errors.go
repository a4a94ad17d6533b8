package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unavailableMessage is all a REST client learns when the gRPC server
// cannot be reached: grpc-go's own message names the backend's address and
// the dial error, which go to the Gateway's log instead.
const unavailableMessage = "the service is unavailable; retry later"

// errorHandler is the mux's error handler: grpc-gateway's default, except
// that a body that was too large or too slow gets 413 or 408 instead of the
// 400 grpc-gateway reports for any body it could not decode, and that a
// message that is not UTF-8 is repaired rather than answered with 500.
func (g *Gateway) errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	err = g.scrubUnavailable(r, validUTF8(err))
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

// scrubUnavailable replaces the message of an Unavailable error, which
// grpc-go fills with the backend's address and dial error, with a generic
// one, and logs the original with the request id.
func (g *Gateway) scrubUnavailable(r *http.Request, err error) error {
	inner := err
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		inner = hs.Err
	}
	st := status.Convert(inner)
	if st.Code() != codes.Unavailable || st.Message() == unavailableMessage {
		return err
	}
	g.log.Warn("gRPC backend unavailable", "request_id", RequestID(r.Context()), "path", r.URL.Path, "err", st.Message())
	return status.Error(codes.Unavailable, unavailableMessage)
}

// validUTF8 returns err with its gRPC status message made valid UTF-8. The
// JSON error body cannot carry anything else, and grpc-gateway answers 500
// "failed to marshal error message" when it must: a message that quotes a
// malformed request header (its own "invalid grpc-timeout: …") or that a
// backend sent may not be valid. FuzzGateway found the header case.
func validUTF8(err error) error {
	inner := err
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		inner = hs.Err
	}
	st := status.Convert(inner)
	if utf8.ValidString(st.Message()) {
		return err
	}
	p := st.Proto()
	p.Message = strings.ToValidUTF8(p.Message, "\uFFFD")
	fixed := status.FromProto(p).Err()
	if hs != nil {
		return &runtime.HTTPStatusError{HTTPStatus: hs.HTTPStatus, Err: fixed}
	}
	return fixed
}

// errTrailing refuses a call whose JSON body held more than its message.
var errTrailing = status.Error(codes.InvalidArgument, "the request body has data after its JSON message")
