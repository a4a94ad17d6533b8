package server

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// BindFlags defines one flag per Config field on fs, with c's current values
// as defaults; parsing fs writes into c. Duration flags take Go durations
// ("30s", "5m") or "never". Call c.Validate (or New) after parsing.
//
//	cfg := server.DefaultConfig()
//	cfg.BindFlags(flag.CommandLine)
//	flag.Parse()
func (c *Config) BindFlags(fs *flag.FlagSet) {
	dur := func(p *time.Duration, name, usage string) {
		fs.Var((*durationFlag)(p), name, usage+" (a Go duration or \"never\")")
	}
	dur(&c.MaxConnectionAge, "max-connection-age", "rotate each connection after this long, ±10% jitter")
	dur(&c.MaxConnectionAgeGrace, "max-connection-age-grace", "time calls get to finish on a rotated connection")
	dur(&c.MaxConnectionIdle, "max-connection-idle", "close connections idle for this long")
	dur(&c.KeepaliveTime, "keepalive-time", "ping a silent client after this long")
	dur(&c.KeepaliveTimeout, "keepalive-timeout", "close the connection when a ping is not answered within this")
	dur(&c.MinPingInterval, "min-ping-interval", "shortest client ping interval tolerated")
	fs.BoolVar(&c.ForbidPingsWithoutStream, "forbid-pings-without-stream", c.ForbidPingsWithoutStream, "count client pings without an open call as abuse")
	fs.Func("max-concurrent-streams", fmt.Sprintf("calls open at once per connection, 0 for no limit (default %d)", c.MaxConcurrentStreams), func(v string) error {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return fmt.Errorf("%q: want a whole number from 0 to %d", v, uint32(1<<32-1))
		}
		c.MaxConcurrentStreams = uint32(n)
		return nil
	})
	fs.IntVar(&c.MaxRecvMsgSize, "max-recv-msg-size", c.MaxRecvMsgSize, "largest message accepted, in bytes")
	fs.IntVar(&c.MaxSendMsgSize, "max-send-msg-size", c.MaxSendMsgSize, "largest message sent, in bytes")
	dur(&c.HandshakeTimeout, "handshake-timeout", "close a new connection that has not finished its TLS and HTTP/2 handshake within this")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "connections open at once; more are refused at accept (0: no limit)")
	dur(&c.ShutdownDelay, "shutdown-delay", "keep serving this long after SIGTERM while reporting NOT_SERVING")
	dur(&c.DrainTimeout, "drain-timeout", "time calls get to finish after the GOAWAY of a shutdown")
	dur(&c.RotateSpread, "rotate-spread", "window over which an on-demand rotation spreads its GOAWAYs")
}

// ApplyEnv sets every flag of fs that was not given on the command line from
// the environment variable named prefix + the flag name in upper case with
// dashes as underscores: with prefix "ROTOR_", -max-connection-age reads
// ROTOR_MAX_CONNECTION_AGE. Command-line flags win over the environment. Call
// it after fs.Parse. A malformed value is an error naming the variable.
func ApplyEnv(fs *flag.FlagSet, prefix string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := EnvName(prefix, f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("rotor: environment variable %s=%q: %v", name, v, serr)
		}
	})
	return err
}

// EnvName is the environment variable ApplyEnv reads for flag.
func EnvName(prefix, flag string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// durationFlag is a time.Duration flag that also accepts "never".
type durationFlag time.Duration

func (d *durationFlag) String() string {
	if d == nil {
		return ""
	}
	if time.Duration(*d) == Never {
		return "never"
	}
	return time.Duration(*d).String()
}

func (d *durationFlag) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "never", "off", "infinity":
		*d = durationFlag(Never)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: want a Go duration such as 30s or 5m, or \"never\"", s)
	}
	*d = durationFlag(v)
	return nil
}
