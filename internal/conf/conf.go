// Package conf holds the rules every rotor configuration follows, so that
// server and gateway read alike: the zero value of a field means its
// default, and Off turns a feature off.
package conf

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"
	"unicode"
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
// Off, durations as Go durations. An int64 prints as written, -1 too: the
// kit's int64 fields are byte sizes, which have no Off, and an error about
// MaxBodyBytes = -1 must say -1.
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

// Fill sets every zero field of the struct *c to the same field of def, so
// that a configuration's defaults are written once, as a value: fields
// whose default is zero (a bool, a nil logger) stay as they are.
func Fill[T any](c *T, def T) {
	dst, src := reflect.ValueOf(c).Elem(), reflect.ValueOf(def)
	for i := range dst.NumField() {
		if f := dst.Field(i); f.CanSet() && f.IsZero() {
			f.Set(src.Field(i))
		}
	}
}

// Name spells a Go field name in lower case with sep between its words, as
// flags (sep "-": MaxConnectionAge → max-connection-age) and log keys (sep
// "_") name it. An initialism stays one word: HTTPAddr → http-addr.
func Name(field, sep string) string {
	var b strings.Builder
	r := []rune(field)
	for i, c := range r {
		upper := unicode.IsUpper(c)
		startsWord := i > 0 && upper &&
			(unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))
		if startsWord {
			b.WriteString(sep)
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// LogValue logs every field of the struct c that is a duration, a count or
// a bool as one group, keyed by Name(field, "_"), with Format's values.
func LogValue(c any) slog.Value {
	v := reflect.ValueOf(c)
	var attrs []slog.Attr
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		key := Name(f.Name, "_")
		switch x := v.Field(i).Interface().(type) {
		case time.Duration, int, int64:
			attrs = append(attrs, slog.String(key, Format(x)))
		case bool:
			attrs = append(attrs, slog.Bool(key, x))
		}
	}
	return slog.GroupValue(attrs...)
}
