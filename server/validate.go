package server

import (
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/rotorkit/rotor/internal/conf"
)

// A ConfigError reports one invalid setting: which one, the value it had,
// and what it must be instead. It is the one error type of the kit's
// configuration: Config.Validate, New, Config.ServerOptions, Server.Rotate
// and the gateway package's New all report invalid settings with it, joined
// with errors.Join when there are several.
type ConfigError struct {
	// Field names the setting with its package and type, as a Go reader
	// finds it: "server.Config.MaxConnectionAge",
	// "server.Rotation.Fraction", "server.WithAdminAddr",
	// "gateway.Config.ReadTimeout".
	Field string
	// Value is the rejected value, formatted ("off" for Off).
	Value string
	// Want is what the setting must be, in words.
	Want string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("rotor: %s = %s is invalid: want %s", e.Field, e.Value, e.Want)
}

// problems collects ConfigErrors.
type problems []error

func (p *problems) add(field string, value any, want string) {
	*p = append(*p, &ConfigError{Field: field, Value: conf.Format(value), Want: want})
}

func (p problems) err() error { return errors.Join(p...) }

// Validate reports every invalid or inconsistent field of c at once, as
// *ConfigError values joined with errors.Join, or nil when c is valid. It
// checks exactly what New and ServerOptions check of a Config.
func (c Config) Validate() error {
	var p problems
	c.validate(&p)
	return p.err()
}

func (c Config) validate(p *problems) {
	c = c.withDefaults()
	field := func(name string) string { return "server.Config." + name }
	// A length of time that must be at least min, or Off where off is
	// allowed (offMeans says what Off does; "" when not allowed).
	atLeast := func(name string, d, min time.Duration, offMeans string) {
		switch {
		case d == Off && offMeans != "":
		case d == Off:
			p.add(field(name), d, fmt.Sprintf("at least %s, or 0 for the default; it cannot be turned off", min))
		case d < 0:
			p.add(field(name), d, "a positive duration; negative durations have no meaning"+offHint(offMeans))
		case d < min:
			p.add(field(name), d, fmt.Sprintf("at least %s, or 0 for the default%s", min, offHint(offMeans)))
		}
	}
	// A length of time that may be Off (none) or up to max.
	upTo := func(name string, d, max time.Duration, offMeans string) {
		switch {
		case d == Off:
		case d < 0 || d > max:
			p.add(field(name), d, fmt.Sprintf("at most %s, 0 for the default%s", max, offHint(offMeans)))
		}
	}

	atLeast("MaxConnectionAge", c.MaxConnectionAge, time.Second, "never rotate by age")
	atLeast("MaxConnectionAgeGrace", c.MaxConnectionAgeGrace, time.Nanosecond, "close at once")
	atLeast("MaxConnectionIdle", c.MaxConnectionIdle, time.Second, "keep idle connections")
	atLeast("KeepaliveTime", c.KeepaliveTime, time.Second, "send no pings")
	atLeast("KeepaliveTimeout", c.KeepaliveTimeout, time.Second, "")
	if c.MinPingInterval < time.Second || c.MinPingInterval > time.Hour {
		p.add(field("MinPingInterval"), c.MinPingInterval, "between 1s and 1h, or 0 for the default 10s")
	}
	if c.MaxConcurrentStreams != Off && (c.MaxConcurrentStreams < 1 || c.MaxConcurrentStreams > maxStreams) {
		p.add(field("MaxConcurrentStreams"), c.MaxConcurrentStreams, fmt.Sprintf("1 to %d, or server.Off (the default) for no cap", maxStreams))
	}
	if c.MaxRecvMsgSize < 1 {
		p.add(field("MaxRecvMsgSize"), c.MaxRecvMsgSize, "at least 1 byte, or 0 for the default 4 MiB")
	}
	if c.MaxSendMsgSize < 1 {
		p.add(field("MaxSendMsgSize"), c.MaxSendMsgSize, "at least 1 byte, or 0 for the default 2 GiB - 1")
	}
	if c.HandshakeTimeout < time.Second || c.HandshakeTimeout > 5*time.Minute {
		p.add(field("HandshakeTimeout"), c.HandshakeTimeout, "between 1s and 5m, or 0 for the default 10s; it cannot be turned off")
	}
	if c.MaxConnections != Off && c.MaxConnections < 1 {
		p.add(field("MaxConnections"), c.MaxConnections, "at least 1, or server.Off (the default) for no cap")
	}
	upTo("ShutdownDelay", c.ShutdownDelay, maxShutdownStep, "send GOAWAY at once")
	switch grace := on(c.MaxConnectionAgeGrace); {
	case c.DrainTimeout < 0 && c.DrainTimeout != Off, c.DrainTimeout > maxShutdownStep:
		p.add(field("DrainTimeout"), c.DrainTimeout, fmt.Sprintf("between MaxConnectionAgeGrace (%s) and %s, or 0 for the default %s", conf.Format(c.MaxConnectionAgeGrace), maxShutdownStep, DefaultDrainTimeout))
	case c.MaxConnectionAgeGrace >= 0 && on(c.DrainTimeout) < grace:
		p.add(field("DrainTimeout"), c.DrainTimeout, fmt.Sprintf("at least MaxConnectionAgeGrace (%s): a shutdown must not cut calls that a rotation would let finish", grace))
	}
	upTo("RotateSpread", c.RotateSpread, maxShutdownStep, "send every GOAWAY at once")
}

// maxShutdownStep bounds ShutdownDelay, DrainTimeout and RotateSpread: each
// covers seconds of endpoint propagation or reconnects, not hours, and a
// pod's terminationGracePeriodSeconds must cover the first two.
const maxShutdownStep = 10 * time.Minute

// maxStreams bounds MaxConcurrentStreams: HTTP/2's SETTINGS value is a
// uint32, and an int of 32 bits holds less.
const maxStreams = min(math.MaxUint32, math.MaxInt)

func offHint(offMeans string) string {
	if offMeans == "" {
		return ""
	}
	return ", or server.Off to " + offMeans
}

// validate checks everything New is given.
func (s settings) validate() error {
	var p problems
	s.cfg.validate(&p)
	s.validateTLS(&p)
	if s.adminAddr != "" {
		if _, _, err := net.SplitHostPort(s.adminAddr); err != nil {
			p.add("server.WithAdminAddr", fmt.Sprintf("%q", s.adminAddr), "host:port, e.g. 127.0.0.1:9090")
		} else if !s.adminPublic && !isLoopback(s.adminAddr) {
			p.add("server.WithAdminAddr", fmt.Sprintf("%q", s.adminAddr), "a loopback address such as 127.0.0.1:9090; anyone who reaches the admin endpoints can rotate every connection, so a public address needs WithPublicAdmin (and WithAdminToken)")
		}
	}
	if s.peerTarget != "" {
		if _, _, err := parsePeerTarget(s.peerTarget); err != nil {
			p.add("server.WithPeerDNS", fmt.Sprintf("%q", s.peerTarget), err.Error())
		}
		if s.peerInterval != 0 && (s.peerInterval < 100*time.Millisecond || s.peerInterval > time.Hour) {
			p.add("server.WithPeerDNS interval", s.peerInterval, fmt.Sprintf("between 100ms and 1h, or 0 for the default %s", DefaultPeerInterval))
		}
	}
	if s.orca != nil {
		s.orca.validate(&p)
	}
	if s.fairShare != nil {
		if s.peerTarget == "" {
			p.add("server.WithFairShare", "on", "WithPeerDNS too: fair share finds its peers through the headless Service")
		}
		s.fairShare.validate(&p)
	}
	return p.err()
}
