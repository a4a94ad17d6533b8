// Package conf holds the rules every rotor configuration follows, so that
// server and gateway read alike: the zero value of a field means its
// default, and Off turns a feature off.
package conf

import (
	"fmt"
	"time"
)

// Off is the one sentinel of the kit: a field set to Off turns its feature
// off. Untyped, so that it fits durations and counts alike.
const Off = -1

// Or returns v, or def when v is zero.
func Or[T ~int | ~int64](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Default is the rule of the labs' configurations (internal/kubelab,
// internal/cluster), which have nothing to turn off: a field that is zero
// becomes def, and a negative one is an error that names the field, its
// value and the range, such as "Config.ReadyTimeout is -1s; it must be 0
// (meaning 10s) or more".
func Default[T ~int | ~int64](field string, v *T, def T) error {
	switch {
	case *v < 0:
		return fmt.Errorf("%s is %v; it must be 0 (meaning %v) or more", field, *v, def)
	case *v == 0:
		*v = def
	}
	return nil
}

// Format prints a field's value for an error or a log line: "off" for
// Off, durations as Go durations.
func Format(v any) string {
	switch x := v.(type) {
	case time.Duration:
		if x == Off {
			return "off"
		}
	case int:
		if x == Off {
			return "off"
		}
	}
	return fmt.Sprint(v)
}
