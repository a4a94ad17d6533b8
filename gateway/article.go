package gateway

import (
	"context"
	"fmt"
	"strings"

	"github.com/rotorkit/rotor/server"
)

// This file is the small compatibility surface with the classic "gRPC load
// balancing on Kubernetes" article, whose server starts its REST front with
//
//	go RegisterGRPCGateway(&Config{Fn: pb.RegisterHelloHandlerFromEndpoint, GrpcPort: ":50051"})
//
// Its names, Config.Fn, Config.GrpcPort and RegisterGRPCGateway, keep
// working as written there; the rest of the package uses Config.Register,
// Config.Endpoint and Gateway.Run.

// RegisterGRPCGateway is the article's one call: it builds a Gateway from
// cfg and runs it (Gateway.Run) until the process receives SIGTERM or
// SIGINT (server.SignalContext), then shuts it down as Shutdown does. It
// blocks; start it in a goroutine, as the article does. A nil cfg is a
// *server.ConfigError.
func RegisterGRPCGateway(cfg *Config) error {
	if cfg == nil {
		return &server.ConfigError{Field: "gateway.RegisterGRPCGateway cfg", Value: "nil", Want: "a *gateway.Config"}
	}
	ctx, stop := server.SignalContext(context.Background())
	defer stop()
	gw, err := New(context.Background(), *cfg)
	if err != nil {
		return err
	}
	return gw.Run(ctx)
}

// articleFields merges Fn into the register functions and GrpcPort into
// the endpoint, reporting what is missing or contradictory through bad.
func (c Config) articleFields(bad func(field string, value any, want string)) (fns []RegisterFunc, endpoint string) {
	if c.Fn != nil {
		fns = append(fns, c.Fn)
	}
	for i, fn := range c.Register {
		if fn == nil {
			bad(fmt.Sprintf("Register[%d]", i), "nil", "a Register<Service>HandlerFromEndpoint function")
			continue
		}
		fns = append(fns, fn)
	}
	if c.Fn == nil && len(c.Register) == 0 {
		bad("Fn", "nil", "a Register<Service>HandlerFromEndpoint function, in Fn or Register")
	}
	port, ep := dialable(c.GrpcPort), dialable(c.Endpoint)
	switch {
	case port == "" && ep == "":
		bad("Endpoint", `""`, `the gRPC server to dial, e.g. GrpcPort ":50051" (localhost) or Endpoint "dns:///hello-headless:50051"`)
	case port != "" && ep != "" && port != ep:
		bad("GrpcPort", fmt.Sprintf("%q (Endpoint %q)", c.GrpcPort, c.Endpoint), "only one of GrpcPort and Endpoint, or both naming the same endpoint")
	case strings.ContainsAny(port+ep, " \t\r\n"):
		bad("Endpoint", fmt.Sprintf("%q", port+ep), "a gRPC target without white space")
	default:
		endpoint = ep
		if endpoint == "" {
			endpoint = port
		}
	}
	return fns, endpoint
}

// dialable turns a listen-style address such as ":50051" or "50051" into one
// a client can dial; anything else is returned as is.
func dialable(addr string) string {
	switch {
	case addr == "":
		return ""
	case addr[0] == ':':
		return "localhost" + addr
	case strings.Trim(addr, "0123456789") == "":
		return "localhost:" + addr
	}
	return addr
}
