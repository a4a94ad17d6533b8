package gateway_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/rotorkit/rotor/gateway"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
	"github.com/rotorkit/rotor/server"
)

func TestConfigValidate(t *testing.T) {
	fn := hellov1.RegisterHelloHandlerFromEndpoint
	ok := func(c gateway.Config) gateway.Config {
		if c.Fn == nil && c.Register == nil {
			c.Fn = fn
		}
		if c.GrpcPort == "" && c.Endpoint == "" {
			c.GrpcPort = ":50051"
		}
		return c
	}
	tests := []struct {
		name   string
		cfg    gateway.Config
		fields []string // the fields reported, in order; none: valid
	}{
		{"article literal", gateway.Config{Fn: fn, GrpcPort: ":50051"}, nil},
		{"every field set", ok(gateway.Config{Register: []gateway.RegisterFunc{fn}, Endpoint: "dns:///hello-headless:50051", HTTPAddr: "127.0.0.1:0",
			OpenAPI: []byte(`{}`), ForwardHeaders: []string{"X-Tenant", "cookie"}, MaxConnectionAge: time.Second, ReadHeaderTimeout: time.Minute,
			ReadTimeout: server.Off, WriteTimeout: time.Hour, IdleTimeout: server.Off, MaxHeaderBytes: 1 << 10, MaxBodyBytes: 1,
			ShutdownDelay: server.Off, DrainTimeout: time.Second}), nil},
		{"rotation off", ok(gateway.Config{MaxConnectionAge: server.Off}), nil},
		{"shutdown delay and drain off", ok(gateway.Config{ShutdownDelay: server.Off, DrainTimeout: server.Off}), nil},
		{"same endpoint twice", gateway.Config{Fn: fn, GrpcPort: ":50051", Endpoint: "localhost:50051"}, nil},
		{"no register function", gateway.Config{GrpcPort: ":50051"}, []string{"Fn"}},
		{"nil in Register", ok(gateway.Config{Register: []gateway.RegisterFunc{fn, nil}}), []string{"Register[1]"}},
		{"no endpoint", gateway.Config{Fn: fn}, []string{"Endpoint"}},
		{"two endpoints", gateway.Config{Fn: fn, GrpcPort: ":50051", Endpoint: "dns:///hello:50051"}, []string{"GrpcPort"}},
		{"endpoint with space", gateway.Config{Fn: fn, Endpoint: "hello :50051"}, []string{"Endpoint"}},
		{"HTTPAddr without port", ok(gateway.Config{HTTPAddr: "8080"}), []string{"HTTPAddr"}},
		{"age below 1s", ok(gateway.Config{MaxConnectionAge: 500 * time.Millisecond}), []string{"MaxConnectionAge"}},
		{"negative header timeout", ok(gateway.Config{ReadHeaderTimeout: -time.Second}), []string{"ReadHeaderTimeout"}},
		{"header timeout above 5m", ok(gateway.Config{ReadHeaderTimeout: time.Hour}), []string{"ReadHeaderTimeout"}},
		{"short read and write timeouts", ok(gateway.Config{ReadTimeout: time.Millisecond, WriteTimeout: -2}), []string{"ReadTimeout", "WriteTimeout"}},
		{"header timeout off", ok(gateway.Config{ReadHeaderTimeout: server.Off}), []string{"ReadHeaderTimeout"}},
		{"negative idle timeout", ok(gateway.Config{IdleTimeout: -time.Minute}), []string{"IdleTimeout"}},
		{"tiny header limit", ok(gateway.Config{MaxHeaderBytes: 100}), []string{"MaxHeaderBytes"}},
		{"negative body limit", ok(gateway.Config{MaxBodyBytes: -1}), []string{"MaxBodyBytes"}},
		{"drain timeout above 10m", ok(gateway.Config{DrainTimeout: time.Hour}), []string{"DrainTimeout"}},
		{"negative drain timeout", ok(gateway.Config{DrainTimeout: -time.Second}), []string{"DrainTimeout"}},
		{"shutdown delay above 10m", ok(gateway.Config{ShutdownDelay: 11 * time.Minute}), []string{"ShutdownDelay"}},
		{"HTTPAddr with an unknown port name", ok(gateway.Config{HTTPAddr: ":http-alt-nope"}), []string{"HTTPAddr"}},
		{"HTTPAddr with port out of range", ok(gateway.Config{HTTPAddr: ":70000"}), []string{"HTTPAddr"}},
		{"OpenAPI not JSON", ok(gateway.Config{OpenAPI: []byte("swagger: 2.0")}), []string{"OpenAPI"}},
		{"bad forward headers", ok(gateway.Config{ForwardHeaders: []string{"X-Ok", "Connection", "grpc-timeout", "x-trace-bin", "X Space", "X-Request-Id", "Host", "Proxy-Authorization"}}),
			[]string{"ForwardHeaders[1]", "ForwardHeaders[2]", "ForwardHeaders[4]", "ForwardHeaders[5]", "ForwardHeaders[6]", "ForwardHeaders[7]"}},
		{"all at once", gateway.Config{HTTPAddr: "x", MaxBodyBytes: -5}, []string{"Fn", "Endpoint", "HTTPAddr", "MaxBodyBytes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var got []string
			for _, e := range unjoin(err) {
				var ce *server.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("error %v is not a *ConfigError", e)
				}
				if ce.Value == "" || ce.Want == "" || !strings.HasPrefix(ce.Error(), "rotor: "+ce.Field+" = ") {
					t.Errorf("unhelpful error %q", ce.Error())
				}
				if ce.Field == "gateway.Config.MaxBodyBytes" && ce.Value == "off" {
					t.Errorf("error %q names Off, which MaxBodyBytes does not have: it must say the value as written", ce.Error())
				}
				got = append(got, strings.TrimPrefix(ce.Field, "gateway.Config."))
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("Validate reported %v, want %v\n%v", got, tc.fields, err)
			}
			// New reports the same, and builds nothing.
			gw, nerr := gateway.New(context.Background(), tc.cfg)
			if (nerr == nil) != (err == nil) {
				t.Errorf("New error %v, Validate error %v", nerr, err)
			}
			if gw != nil {
				gw.Close()
			}
		})
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestRegisterGRPCGatewayNil(t *testing.T) {
	var ce *server.ConfigError
	if err := gateway.RegisterGRPCGateway(nil); !errors.As(err, &ce) {
		t.Fatalf("RegisterGRPCGateway(nil) = %v, want a *ConfigError", err)
	}
}

func TestRegisterError(t *testing.T) {
	boom := errors.New("boom")
	failing := func(context.Context, *runtime.ServeMux, string, []grpc.DialOption) error { return boom }
	_, err := gateway.New(context.Background(), gateway.Config{Register: []gateway.RegisterFunc{hellov1.RegisterHelloHandlerFromEndpoint, failing}, GrpcPort: "50051"})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "register function 2 of 2") || !strings.Contains(err.Error(), "localhost:50051") {
		t.Fatalf("New = %v, want the register function's error, naming which one and the endpoint", err)
	}
}
