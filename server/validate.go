package server

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// A ConfigError reports one invalid Config field: which field, the value it
// had, and what it must be instead.
type ConfigError struct {
	Field string // the Config field, e.g. "MaxConnectionAge"
	Value string // the rejected value, formatted
	Want  string // the allowed range, in words
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("rotor/server: %s = %s is invalid: want %s", e.Field, e.Value, e.Want)
}

// Validate reports every invalid or inconsistent field of c at once, as
// *ConfigError values joined with errors.Join, or nil when c is valid.
func (c Config) Validate() error {
	return c.validate(false)
}

// validate checks c. withRotation says whether the caller rotates on demand
// (New does), which gives a grace period a meaning even without an age.
func (c Config) validate(withRotation bool) error {
	var errs []error
	bad := func(field string, value any, want string) {
		errs = append(errs, &ConfigError{Field: field, Value: fmtValue(value), Want: want})
	}
	lifetime := func(field string, d time.Duration, off string) {
		switch {
		case d == Never:
		case d < 0:
			bad(field, d, "a duration of at least 1s, or server.Never to "+off+"; negative durations have no meaning")
		case d < time.Second:
			bad(field, d, "at least 1s (shorter makes every client reconnect constantly), or server.Never to "+off)
		}
	}
	lifetime("MaxConnectionAge", c.MaxConnectionAge, "turn age rotation off")
	lifetime("MaxConnectionIdle", c.MaxConnectionIdle, "keep idle connections")
	switch {
	case c.KeepaliveTime == Never:
	case c.KeepaliveTime < time.Second:
		bad("KeepaliveTime", c.KeepaliveTime, "at least 1s (grpc-go's floor), or server.Never to stop server pings")
	}
	if c.KeepaliveTimeout < time.Second {
		bad("KeepaliveTimeout", c.KeepaliveTimeout, "at least 1s: a shorter timeout closes healthy connections on a busy network")
	}
	if c.MinPingInterval < time.Second || c.MinPingInterval > time.Hour {
		bad("MinPingInterval", c.MinPingInterval, "between 1s and 1h")
	}
	switch {
	case c.MaxConnectionAgeGrace < 0:
		bad("MaxConnectionAgeGrace", c.MaxConnectionAgeGrace, "0 or more (0 closes a rotated connection at once)")
	case c.MaxConnectionAgeGrace > 0 && c.MaxConnectionAge == Never && !withRotation:
		bad("MaxConnectionAgeGrace", c.MaxConnectionAgeGrace, "0 when MaxConnectionAge is server.Never: grpc-go only uses the grace after an age-based GOAWAY")
	}
	if c.MaxRecvMsgSize < 1 {
		bad("MaxRecvMsgSize", c.MaxRecvMsgSize, "at least 1 byte (the default is 4 MiB)")
	}
	if c.MaxSendMsgSize < 1 {
		bad("MaxSendMsgSize", c.MaxSendMsgSize, "at least 1 byte")
	}
	if c.HandshakeTimeout < time.Second || c.HandshakeTimeout > 5*time.Minute {
		bad("HandshakeTimeout", c.HandshakeTimeout, "between 1s and 5m")
	}
	if c.MaxConnections < 0 {
		bad("MaxConnections", c.MaxConnections, "0 (no limit) or more")
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > 10*time.Minute {
		bad("ShutdownDelay", c.ShutdownDelay, "between 0 and 10m (the pod's terminationGracePeriodSeconds must cover it)")
	}
	switch {
	case c.DrainTimeout < 0:
		bad("DrainTimeout", c.DrainTimeout, "0 or more")
	case c.MaxConnectionAgeGrace >= 0 && c.DrainTimeout < c.MaxConnectionAgeGrace:
		bad("DrainTimeout", c.DrainTimeout, fmt.Sprintf("at least MaxConnectionAgeGrace (%s): a shutdown must not cut calls that a rotation would let finish", c.MaxConnectionAgeGrace))
	}
	if c.RotateSpread < 0 || c.RotateSpread > 10*time.Minute {
		bad("RotateSpread", c.RotateSpread, "between 0 (all at once) and 10m")
	}
	return errors.Join(errs...)
}

func fmtValue(v any) string {
	if d, ok := v.(time.Duration); ok && d == Never {
		return "Never"
	}
	return fmt.Sprint(v)
}

// validate checks the settings New takes beyond the Config.
func (s settings) validate() error {
	errs := []error{s.cfg.validate(true), s.validateTLS()}
	bad := func(field, value, want string) {
		errs = append(errs, &ConfigError{Field: field, Value: value, Want: want})
	}
	if s.adminAddr != "" {
		if _, _, err := net.SplitHostPort(s.adminAddr); err != nil {
			bad("WithAdminAddr", fmt.Sprintf("%q", s.adminAddr), "host:port, e.g. 127.0.0.1:9090")
		} else if !s.adminPublic && !isLoopback(s.adminAddr) {
			bad("WithAdminAddr", fmt.Sprintf("%q", s.adminAddr), "a loopback address such as 127.0.0.1:9090; anyone who reaches the admin endpoints can rotate every connection, so a public address needs WithPublicAdmin (and WithAdminToken)")
		}
	}
	if s.peerTarget != "" {
		if _, _, err := parsePeerTarget(s.peerTarget); err != nil {
			bad("WithPeerDNS", fmt.Sprintf("%q", s.peerTarget), err.Error())
		}
		if s.peerInterval < 0 || (s.peerInterval > 0 && s.peerInterval < 100*time.Millisecond) {
			bad("WithPeerDNS interval", s.peerInterval.String(), "0 (5s) or at least 100ms")
		}
	}
	if s.fairShare != nil {
		if s.peerTarget == "" {
			bad("WithFairShare", "on", "WithPeerDNS too: fair share finds its peers through the headless Service")
		}
		errs = append(errs, s.fairShare.validate())
	}
	return errors.Join(errs...)
}
