package server_test

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/rotorkit/rotor/server"
)

// FuzzConfig loads a Config the way a program does (BindFlags, Parse,
// ApplyEnv, Validate, New) from random arguments, one per line, and one
// random environment variable. Nothing may panic, and every error must say
// what to fix: a parse error names the argument or flag, an environment
// error the variable, a validation error a Config field (as a *ConfigError).
// A Config that Validate accepts must build a Server. The seeds are in
// testdata/fuzz/FuzzConfig.
//
//	go test -run '^$' -fuzz '^FuzzConfig$' -fuzztime 30s ./server
func FuzzConfig(f *testing.F) {
	fields := map[string]bool{}
	for _, sf := range reflect.VisibleFields(reflect.TypeFor[server.Config]()) {
		fields["server.Config."+sf.Name] = true
	}
	f.Fuzz(func(t *testing.T, args string, envFlag uint8, envValue string) {
		cfg := server.DefaultConfig()
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.BindFlags(fs)
		var argv []string
		if args != "" {
			argv = strings.Split(args, "\n")
		}
		if err := fs.Parse(argv); err != nil {
			if !errors.Is(err, flag.ErrHelp) && !namesArgument(err.Error(), argv) {
				t.Errorf("Parse(%q) = %q: names no argument or flag", argv, err)
			}
			return
		}

		var names []string
		fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
		const prefix = "ROTOR_FUZZ_"
		env := server.EnvName(prefix, names[int(envFlag)%len(names)])
		if !strings.ContainsRune(envValue, 0) { // the one byte no variable can hold
			t.Setenv(env, envValue)
		}
		if err := server.ApplyEnv(fs, prefix); err != nil {
			if !strings.Contains(err.Error(), env) {
				t.Errorf("ApplyEnv with %s=%q: %q does not name the variable", env, envValue, err)
			}
			return
		}

		err := cfg.Validate()
		checkConfigErrors(t, err, fields)
		_, optsErr := cfg.ServerOptions()
		checkConfigErrors(t, optsErr, fields)
		if err != nil {
			return
		}
		if optsErr != nil {
			t.Errorf("Validate accepted %+v, ServerOptions did not: %v", cfg, optsErr)
		}
		if _, err := server.New(server.WithConfig(cfg), server.WithLogger(quietLog)); err != nil {
			t.Errorf("Validate accepted %+v, New did not: %v", cfg, err)
		}
	})
}

// namesArgument reports whether msg quotes one of the arguments or the flag
// name one of them gives ("-name" out of "--name=value").
func namesArgument(msg string, argv []string) bool {
	for _, a := range argv {
		if a == "" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.Contains(msg, a) || (name != "" && strings.Contains(msg, "-"+name)) {
			return true
		}
	}
	return false
}

// checkConfigErrors requires every error joined in err to be a
// *ConfigError naming a Config field.
func checkConfigErrors(t *testing.T, err error, fields map[string]bool) {
	t.Helper()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *server.ConfigError
		if !errors.As(e, &ce) || !fields[ce.Field] || ce.Want == "" {
			t.Errorf("error %q is not a *ConfigError naming a Config field and the allowed values", e)
		}
	}
}
