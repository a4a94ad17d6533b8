package server

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rotorkit/rotor/internal/conf"
)

// BindFlags defines one flag per Config field on fs, named after the field
// in kebab case (-max-connection-age), with c's current values as defaults;
// parsing fs writes into c. Duration flags take Go durations ("30s", "5m")
// and count flags whole numbers; both take "off" for Off where the field
// allows it, and 0 for the field's default. Validate (or New) checks the
// values after parsing.
//
//	cfg := server.DefaultConfig()
//	cfg.BindFlags(flag.CommandLine)
//	flag.Parse()
func (c *Config) BindFlags(fs *flag.FlagSet) {
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		field := v.Type().Field(i).Name
		name, usage := conf.Name(field, "-"), flagUsage[field]
		switch p := v.Field(i).Addr().Interface().(type) {
		case *time.Duration:
			fs.Var((*durationFlag)(p), name, usage+` (a Go duration, or "off")`)
		case *int:
			fs.Var((*countFlag)(p), name, usage+` (a whole number, or "off")`)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		}
	}
}

// flagUsage is each Config field's flag help, one line.
var flagUsage = map[string]string{
	"MaxConnectionAge":         "send GOAWAY to each connection after this long, ±10% jitter",
	"MaxConnectionAgeGrace":    "time calls get to finish on a connection sent GOAWAY",
	"MaxConnectionIdle":        "send GOAWAY to connections idle for this long",
	"KeepaliveTime":            "ping a silent client after this long",
	"KeepaliveTimeout":         "close the connection when a ping is not answered within this",
	"MinPingInterval":          "shortest client ping interval tolerated",
	"ForbidPingsWithoutStream": "count client pings without an open call as abuse",
	"MaxConcurrentStreams":     "calls open at once per connection",
	"MaxRecvMsgSize":           "largest message accepted, in bytes",
	"MaxSendMsgSize":           "largest message sent, in bytes",
	"HandshakeTimeout":         "close a new connection that has not finished its TLS and HTTP/2 handshake within this",
	"MaxConnections":           "connections open at once; more are refused at accept",
	"ShutdownDelay":            "keep serving this long after SIGTERM while reporting NOT_SERVING",
	"DrainTimeout":             "bound of the drain after the shutdown delay (GOAWAY, lame duck, calls finishing)",
	"RotateSpread":             "window over which an on-demand rotation spreads its GOAWAYs",
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

// durationFlag is a time.Duration flag that also takes "off".
type durationFlag time.Duration

func (d *durationFlag) String() string {
	if d == nil {
		return ""
	}
	return conf.Format(time.Duration(*d))
}

func (d *durationFlag) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "never":
		*d = durationFlag(Off)
		return nil
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration: want a Go duration such as 30s or 5m, or \"off\"", s)
	}
	*d = durationFlag(v)
	return nil
}

// countFlag is an int flag that also takes "off".
type countFlag int

func (n *countFlag) String() string {
	if n == nil {
		return ""
	}
	return conf.Format(int(*n))
}

func (n *countFlag) Set(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		*n = countFlag(Off)
		return nil
	}
	v, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%q is out of range (%d to %d): want e.g. 100, or \"off\"", s, math.MinInt, math.MaxInt)
	}
	if err != nil {
		return fmt.Errorf("%q is not a whole number: want e.g. 100, or \"off\"", s)
	}
	*n = countFlag(v)
	return nil
}
