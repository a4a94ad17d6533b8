package interceptors

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// panicMessage is all a client learns of a panic: the panic value may hold
// anything (secrets, internal addresses), so it goes to the log only.
const panicMessage = "internal error"

func recoveryInterceptors(log *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	handler := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		// Deferred calls run on top of the panicking frames, so this stack
		// still shows where the panic happened.
		log.ErrorContext(ctx, "panic recovered",
			"grpc.full_method", methodOf(ctx),
			"panic", fmt.Sprint(p),
			"stack", string(debug.Stack()),
		)
		return status.Error(codes.Internal, panicMessage)
	})
	return recovery.UnaryServerInterceptor(handler), recovery.StreamServerInterceptor(handler)
}

func methodOf(ctx context.Context) string {
	m, _ := grpc.Method(ctx)
	return m
}
