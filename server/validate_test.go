package server_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rotorkit/rotor/server"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*server.Config)
		field  string // "" means valid
		want   string // part of the allowed range the error must name
	}{
		{"defaults", func(*server.Config) {}, "", ""},
		{"age never", func(c *server.Config) { c.MaxConnectionAge = server.Never; c.MaxConnectionAgeGrace = 0 }, "", ""},
		{"age 1s", func(c *server.Config) { c.MaxConnectionAge = time.Second }, "", ""},
		{"negative age", func(c *server.Config) { c.MaxConnectionAge = -time.Second }, "MaxConnectionAge", "negative"},
		{"zero age", func(c *server.Config) { c.MaxConnectionAge = 0 }, "MaxConnectionAge", "at least 1s"},
		{"age below 1s", func(c *server.Config) { c.MaxConnectionAge = 500 * time.Millisecond }, "MaxConnectionAge", "at least 1s"},
		{"negative grace", func(c *server.Config) { c.MaxConnectionAgeGrace = -1 }, "MaxConnectionAgeGrace", "0 or more"},
		{"grace without age", func(c *server.Config) { c.MaxConnectionAge = server.Never }, "MaxConnectionAgeGrace", "Never"},
		{"idle below 1s", func(c *server.Config) { c.MaxConnectionIdle = time.Millisecond }, "MaxConnectionIdle", "at least 1s"},
		{"negative idle", func(c *server.Config) { c.MaxConnectionIdle = -time.Minute }, "MaxConnectionIdle", "negative"},
		{"keepalive time below floor", func(c *server.Config) { c.KeepaliveTime = 999 * time.Millisecond }, "KeepaliveTime", "at least 1s"},
		{"keepalive timeout zero", func(c *server.Config) { c.KeepaliveTimeout = 0 }, "KeepaliveTimeout", "at least 1s"},
		{"min ping interval zero", func(c *server.Config) { c.MinPingInterval = 0 }, "MinPingInterval", "between 1s and 1h"},
		{"min ping interval too long", func(c *server.Config) { c.MinPingInterval = 2 * time.Hour }, "MinPingInterval", "between 1s and 1h"},
		{"recv size zero", func(c *server.Config) { c.MaxRecvMsgSize = 0 }, "MaxRecvMsgSize", "at least 1 byte"},
		{"send size negative", func(c *server.Config) { c.MaxSendMsgSize = -5 }, "MaxSendMsgSize", "at least 1 byte"},
		{"handshake timeout zero", func(c *server.Config) { c.HandshakeTimeout = 0 }, "HandshakeTimeout", "between 1s and 5m"},
		{"negative max connections", func(c *server.Config) { c.MaxConnections = -1 }, "MaxConnections", "0 (no limit) or more"},
		{"negative shutdown delay", func(c *server.Config) { c.ShutdownDelay = -time.Second }, "ShutdownDelay", "between 0 and 10m"},
		{"shutdown delay Never", func(c *server.Config) { c.ShutdownDelay = server.Never }, "ShutdownDelay", "between 0 and 10m"},
		{"drain shorter than grace", func(c *server.Config) { c.DrainTimeout = 5 * time.Second }, "DrainTimeout", "at least MaxConnectionAgeGrace (10s)"},
		{"negative drain", func(c *server.Config) { c.DrainTimeout = -1 }, "DrainTimeout", "0 or more"},
		{"zero delay and drain with zero grace", func(c *server.Config) {
			c.ShutdownDelay, c.DrainTimeout, c.MaxConnectionAgeGrace = 0, 0, 0
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := server.DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			_, optsErr := server.Options(cfg)
			if tt.field == "" {
				if err != nil || optsErr != nil {
					t.Fatalf("Validate() = %v, Options() error = %v; want both nil", err, optsErr)
				}
				return
			}
			if optsErr == nil || err == nil {
				t.Fatalf("Validate() = %v, Options() error = %v; want an error for %s", err, optsErr, tt.field)
			}
			var ce *server.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			if ce.Field != tt.field {
				t.Errorf("error names field %q, want %q (error: %v)", ce.Field, tt.field, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.field) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q should name %q and the allowed range %q", msg, tt.field, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.MaxConnectionAge = -1
	cfg.ShutdownDelay = -1
	cfg.MaxRecvMsgSize = 0
	err := cfg.Validate()
	for _, f := range []string{"MaxConnectionAge", "ShutdownDelay", "MaxRecvMsgSize"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate() = %v; want it to name %s", err, f)
		}
	}
}

func TestNewAcceptsGraceWithoutAge(t *testing.T) {
	// On-demand rotation uses the grace, so the kit's Server accepts it
	// even when age rotation is off.
	if _, err := server.New(server.WithMaxConnectionAge(server.Never)); err != nil {
		t.Fatalf("New with age Never and the default grace: %v", err)
	}
	if _, err := server.New(server.WithMaxConnectionAge(10 * time.Millisecond)); err == nil {
		t.Fatal("New accepted MaxConnectionAge 10ms")
	}
}
