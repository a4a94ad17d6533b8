package server_test

import (
	"flag"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotorkit/rotor/server"
)

func TestBindFlagsAndEnv(t *testing.T) {
	t.Setenv("ROTOR_MAX_CONNECTION_AGE", "2m")
	t.Setenv("ROTOR_SHUTDOWN_DELAY", "3s")
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.BindFlags(fs)
	if err := fs.Parse([]string{"-shutdown-delay=1s", "-max-connection-idle=never"}); err != nil {
		t.Fatal(err)
	}
	if err := server.ApplyEnv(fs, "ROTOR_"); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConnectionAge != 2*time.Minute {
		t.Errorf("MaxConnectionAge = %v, want 2m from the environment", cfg.MaxConnectionAge)
	}
	if cfg.ShutdownDelay != time.Second {
		t.Errorf("ShutdownDelay = %v, want the flag's 1s to win over the environment", cfg.ShutdownDelay)
	}
	if cfg.MaxConnectionIdle != server.Off {
		t.Errorf("MaxConnectionIdle = %v, want Never", cfg.MaxConnectionIdle)
	}
}

func TestEnvErrorNamesVariable(t *testing.T) {
	t.Setenv("ROTOR_DRAIN_TIMEOUT", "soon")
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.BindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := server.ApplyEnv(fs, "ROTOR_")
	if err == nil || !strings.Contains(err.Error(), "ROTOR_DRAIN_TIMEOUT") {
		t.Fatalf("ApplyEnv() = %v; want an error naming ROTOR_DRAIN_TIMEOUT", err)
	}
}

func TestBadDurationFlag(t *testing.T) {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.BindFlags(fs)
	err := fs.Parse([]string{"-max-connection-age=thirty"})
	if err == nil || !strings.Contains(err.Error(), "max-connection-age") {
		t.Fatalf("Parse() = %v; want an error naming -max-connection-age", err)
	}
}

// Count flags take whole numbers or "off" and nothing else; what parses but
// is out of range is Validate's to reject, naming the field.
func TestCountFlagsAreStrict(t *testing.T) {
	parse := func(v string) (server.Config, error) {
		cfg := server.DefaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.BindFlags(fs)
		return cfg, fs.Parse([]string{"-max-concurrent-streams=" + v})
	}
	for _, v := range []string{"10abc", "1e3", "0x10", "", "many"} {
		if cfg, err := parse(v); err == nil {
			t.Errorf("-max-concurrent-streams=%q accepted (got %d)", v, cfg.MaxConcurrentStreams)
		}
	}
	for v, want := range map[string]int{"off": server.Off, "OFF": server.Off, "100": 100} {
		if cfg, err := parse(v); err != nil || cfg.MaxConcurrentStreams != want {
			t.Errorf("-max-concurrent-streams=%s: %v, %d; want %d", v, err, cfg.MaxConcurrentStreams, want)
		}
	}
	if _, err := parse("99999999999999999999"); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("-max-concurrent-streams=99999999999999999999: %v; want out of range", err)
	}
	cfg, err := parse("4294967296")
	if strconv.IntSize == 32 { // the flag cannot hold it: it says so
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("-max-concurrent-streams=4294967296 with a 32-bit int: %v; want out of range", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server.Config.MaxConcurrentStreams") {
		t.Errorf("Validate() with 4294967296 streams = %v; want an error naming the field", err)
	}
}
