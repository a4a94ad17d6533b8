package server_test

import (
	"flag"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/rotorkit/rotor/server"
)

// appliedBy says where each Config field takes effect: a grpc-go server
// option (ServerOptions and the kit's Server both), or the kit's Server
// alone. A new field must be added here, which is the reminder to wire it
// through every place TestEveryConfigFieldIsWired checks.
var appliedBy = map[string]string{
	"MaxConnectionAge":         "grpc and kit (the kit runs the age itself)",
	"MaxConnectionAgeGrace":    "grpc and kit",
	"MaxConnectionIdle":        "grpc",
	"KeepaliveTime":            "grpc",
	"KeepaliveTimeout":         "grpc",
	"MinPingInterval":          "grpc",
	"ForbidPingsWithoutStream": "grpc",
	"MaxConcurrentStreams":     "grpc",
	"MaxRecvMsgSize":           "grpc",
	"MaxSendMsgSize":           "grpc",
	"HandshakeTimeout":         "grpc",
	"MaxConnections":           "kit",
	"ShutdownDelay":            "kit",
	"DrainTimeout":             "kit",
	"RotateSpread":             "kit",
}

// Every Config field has a default written out by DefaultConfig, a log key,
// a flag, a row in the README's configuration table, and a line in
// appliedBy. The test fails when a new field misses one of them.
func TestEveryConfigFieldIsWired(t *testing.T) {
	def := reflect.ValueOf(server.DefaultConfig())
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "cfg", server.Config{})
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var cfg server.Config
	cfg.BindFlags(fs)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	words := regexp.MustCompile(`[A-Z][a-z]+|[A-Z]+(?:[A-Z][a-z]|$)`)
	for i, f := range reflect.VisibleFields(def.Type()) {
		if !f.IsExported() {
			continue // not configuration: BindFlags and LogValue skip it too
		}
		parts := words.FindAllString(f.Name, -1)
		for j := range parts {
			parts[j] = strings.ToLower(parts[j])
		}
		snake, kebab := strings.Join(parts, "_"), strings.Join(parts, "-")
		if f.Type.Kind() != reflect.Bool && def.Field(i).IsZero() {
			t.Errorf("DefaultConfig().%s is zero: DefaultConfig must write every default out", f.Name)
		}
		if !strings.Contains(logged.String(), "cfg."+snake+"=") {
			t.Errorf("Config.LogValue has no key %q for %s: %s", snake, f.Name, logged.String())
		}
		if fl := fs.Lookup(kebab); fl == nil {
			t.Errorf("BindFlags defines no -%s for %s", kebab, f.Name)
		} else if strings.HasPrefix(fl.Usage, " (") || fl.Usage == "" {
			t.Errorf("-%s has no help: add %s to flagUsage", kebab, f.Name)
		}
		if !strings.Contains(string(readme), "`"+f.Name+"`") {
			t.Errorf("README.md's configuration table has no row for %s", f.Name)
		}
		if appliedBy[f.Name] == "" {
			t.Errorf("%s is not in appliedBy: say where it takes effect, and wire it there", f.Name)
		}
	}
	if n := def.NumField(); len(appliedBy) != n {
		t.Errorf("appliedBy has %d fields, Config %d", len(appliedBy), n)
	}
}

// Every FairShare field has a row in the README's fair-share table, whose
// first cell names it: a new field must be documented for users there.
func TestEveryFairShareFieldIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The table: from its header to the first line that is not a row.
	_, table, ok := strings.Cut(string(readme), "\n| `FairShare` field")
	if !ok {
		t.Fatal("README.md has no table whose header begins with `FairShare` field")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	for _, f := range reflect.VisibleFields(reflect.TypeFor[server.FairShare]()) {
		if !f.IsExported() {
			continue
		}
		if !regexp.MustCompile("(?m)^\\| `" + f.Name + "`[ |]").MatchString(table) {
			t.Errorf("README.md's FairShare table has no row for %s", f.Name)
		}
	}
}
