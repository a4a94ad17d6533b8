package interceptors

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
)

// The per-method handlers are kept for at most maxMethods methods, so that a
// server whose unknown-service handler takes any method name cannot grow
// the cache without end; lines of methods past the cap are still complete.
func TestCallLoggerMethodCap(t *testing.T) {
	var out bytes.Buffer
	l := &callLogger{log: slog.New(slog.NewJSONHandler(&out, nil))}
	for i := range maxMethods + 10 {
		meta := interceptors.CallMeta{Service: "svc", Method: fmt.Sprintf("M%d", i), Typ: interceptors.Unary}
		rep, _ := l.ServerReporter(context.Background(), meta)
		rep.PostCall(nil, 0)
	}
	if n := l.nMethods.Load(); n != maxMethods {
		t.Errorf("%d methods kept, want the cap %d", n, maxMethods)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if len(lines) != maxMethods+10 || !strings.Contains(last, fmt.Sprintf(`"grpc.method":"M%d"`, maxMethods+9)) || !strings.Contains(last, `"grpc.service":"svc"`) {
		t.Errorf("%d lines, the last %s; want %d, the last naming svc/M%d", len(lines), last, maxMethods+10, maxMethods+9)
	}
}
