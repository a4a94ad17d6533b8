package gateway

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"
)

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
