package server_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotorkit/rotor/server"
)

func TestConfigValidate(t *testing.T) {
	type validateCase struct {
		name   string
		change func(*server.Config)
		field  string // "" means valid
		want   string // part of the allowed range the error must name
	}
	tests := []validateCase{
		{"zero value is the defaults", func(*server.Config) {}, "", ""},
		{"age off", func(c *server.Config) { c.MaxConnectionAge = server.Off }, "", ""},
		{"age off with a grace", func(c *server.Config) { c.MaxConnectionAge = server.Off; c.MaxConnectionAgeGrace = time.Second }, "", ""},
		{"age 1s", func(c *server.Config) { c.MaxConnectionAge = time.Second }, "", ""},
		{"negative age", func(c *server.Config) { c.MaxConnectionAge = -time.Second }, "MaxConnectionAge", "negative"},
		{"age below 1s", func(c *server.Config) { c.MaxConnectionAge = 500 * time.Millisecond }, "MaxConnectionAge", "at least 1s"},
		{"grace off", func(c *server.Config) { c.MaxConnectionAgeGrace = server.Off }, "", ""},
		{"negative grace", func(c *server.Config) { c.MaxConnectionAgeGrace = -2 }, "MaxConnectionAgeGrace", "server.Off"},
		{"idle below 1s", func(c *server.Config) { c.MaxConnectionIdle = time.Millisecond }, "MaxConnectionIdle", "at least 1s"},
		{"negative idle", func(c *server.Config) { c.MaxConnectionIdle = -time.Minute }, "MaxConnectionIdle", "negative"},
		{"keepalive off", func(c *server.Config) { c.KeepaliveTime = server.Off }, "", ""},
		{"keepalive time below floor", func(c *server.Config) { c.KeepaliveTime = 999 * time.Millisecond }, "KeepaliveTime", "at least 1s"},
		{"keepalive timeout off", func(c *server.Config) { c.KeepaliveTimeout = server.Off }, "KeepaliveTimeout", "cannot be turned off"},
		{"keepalive timeout short", func(c *server.Config) { c.KeepaliveTimeout = time.Millisecond }, "KeepaliveTimeout", "at least 1s"},
		{"min ping interval too long", func(c *server.Config) { c.MinPingInterval = 2 * time.Hour }, "MinPingInterval", "between 1s and 1h"},
		{"min ping interval off", func(c *server.Config) { c.MinPingInterval = server.Off }, "MinPingInterval", "between 1s and 1h"},
		{"streams capped", func(c *server.Config) { c.MaxConcurrentStreams = 100 }, "", ""},
		{"streams negative", func(c *server.Config) { c.MaxConcurrentStreams = -5 }, "MaxConcurrentStreams", "1 to " + strconv.Itoa(min(math.MaxUint32, math.MaxInt))},
		{"recv size negative", func(c *server.Config) { c.MaxRecvMsgSize = -1 }, "MaxRecvMsgSize", "at least 1 byte"},
		{"send size negative", func(c *server.Config) { c.MaxSendMsgSize = -5 }, "MaxSendMsgSize", "at least 1 byte"},
		{"handshake timeout off", func(c *server.Config) { c.HandshakeTimeout = server.Off }, "HandshakeTimeout", "cannot be turned off"},
		{"handshake timeout long", func(c *server.Config) { c.HandshakeTimeout = time.Hour }, "HandshakeTimeout", "between 1s and 5m"},
		{"negative max connections", func(c *server.Config) { c.MaxConnections = -3 }, "MaxConnections", "server.Off"},
		{"max connections off", func(c *server.Config) { c.MaxConnections = server.Off }, "", ""},
		{"shutdown delay off", func(c *server.Config) { c.ShutdownDelay = server.Off }, "", ""},
		{"negative shutdown delay", func(c *server.Config) { c.ShutdownDelay = -time.Second }, "ShutdownDelay", "at most 10m"},
		{"shutdown delay hours", func(c *server.Config) { c.ShutdownDelay = time.Hour }, "ShutdownDelay", "at most 10m"},
		{"drain shorter than grace", func(c *server.Config) { c.DrainTimeout = 5 * time.Second }, "DrainTimeout", "at least MaxConnectionAgeGrace (10s)"},
		{"drain off with a grace", func(c *server.Config) { c.DrainTimeout = server.Off }, "DrainTimeout", "at least MaxConnectionAgeGrace"},
		{"negative drain", func(c *server.Config) { c.DrainTimeout = -2 }, "DrainTimeout", "between MaxConnectionAgeGrace"},
		{"drain, delay and grace off", func(c *server.Config) {
			c.ShutdownDelay, c.DrainTimeout, c.MaxConnectionAgeGrace = server.Off, server.Off, server.Off
		}, "", ""},
		{"spread off", func(c *server.Config) { c.RotateSpread = server.Off }, "", ""},
		{"spread an hour", func(c *server.Config) { c.RotateSpread = time.Hour }, "RotateSpread", "at most 10m"},
	}
	if strconv.IntSize == 64 { // a 32-bit int cannot go past a uint32
		wide := uint64(math.MaxUint32)
		over := int(wide + 1)
		tests = append(tests, validateCase{"streams over uint32", func(c *server.Config) { c.MaxConcurrentStreams = over }, "MaxConcurrentStreams", "1 to 4294967295"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg server.Config
			tt.change(&cfg)
			err := cfg.Validate()
			_, optsErr := cfg.ServerOptions()
			_, newErr := server.New(server.WithConfig(cfg))
			if tt.field == "" {
				if err != nil || optsErr != nil || newErr != nil {
					t.Fatalf("Validate() = %v, ServerOptions() error = %v, New() error = %v; want all nil", err, optsErr, newErr)
				}
				return
			}
			if err == nil || optsErr == nil || newErr == nil {
				t.Fatalf("Validate() = %v, ServerOptions() error = %v, New() error = %v; want all an error for %s", err, optsErr, newErr, tt.field)
			}
			var ce *server.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			if want := "server.Config." + tt.field; ce.Field != want {
				t.Errorf("error names field %q, want %q (error: %v)", ce.Field, want, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "rotor: ") || !strings.Contains(msg, tt.field) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q should start with \"rotor: \" and name %q and the allowed range %q", msg, tt.field, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	cfg := server.Config{MaxConnectionAge: -2, ShutdownDelay: -2, MaxRecvMsgSize: -1}
	err := cfg.Validate()
	for _, f := range []string{"MaxConnectionAge", "ShutdownDelay", "MaxRecvMsgSize"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate() = %v; want it to name %s", err, f)
		}
	}
}

// The zero Config and DefaultConfig are the same settings.
func TestZeroConfigIsTheDefaults(t *testing.T) {
	def := server.DefaultConfig()
	if def.MaxConnectionAge != server.DefaultMaxConnectionAge || def.DrainTimeout != server.DefaultDrainTimeout || def.MaxConnectionIdle != server.Off {
		t.Errorf("DefaultConfig() = %+v", def)
	}
	srv, err := server.New()
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Config(); got != def {
		t.Errorf("New().Config() = %+v, want DefaultConfig() %+v", got, def)
	}
}
