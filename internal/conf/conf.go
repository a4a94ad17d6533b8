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
