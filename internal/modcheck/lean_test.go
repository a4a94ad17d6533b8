package modcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A fresh module that imports server, gateway and interceptors (the kit)
// lists no k8s.io, go.etcd.io or CoreDNS module in its graph: those belong
// to the example and lab modules, never to what the kit's users download.
// It builds no OpenTelemetry SDK or exporter, and package server no
// OpenTelemetry at all.
func TestKitModuleGraphIsLean(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: resolves a module graph")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/consumer\n\ngo 1.26.0\n\nrequire github.com/rotorkit/rotor v0.0.0\n\nreplace github.com/rotorkit/rotor => "+root+"\n")
	write("main.go", `package main

import (
	_ "github.com/rotorkit/rotor/gateway"
	_ "github.com/rotorkit/rotor/interceptors"
	_ "github.com/rotorkit/rotor/server"
)

func main() {}
`)
	run := func(args ...string) string {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "tidy")
	mods := run("list", "-m", "all")
	for _, line := range strings.Split(mods, "\n") {
		for _, heavy := range []string{"k8s.io/", "sigs.k8s.io/", "go.etcd.io/", "coredns"} {
			if strings.Contains(line, heavy) {
				t.Errorf("the kit's module graph holds %q", line)
			}
		}
	}
	run("build", "-o", os.DevNull, ".")

	// Tracing: the kit builds OpenTelemetry's API and instrumentations,
	// never its SDK or exporters, which a program chooses (example/server
	// sets them up); and the server package builds none of it.
	for _, pkg := range strings.Fields(run("list", "-deps", ".")) {
		for _, heavy := range []string{"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters/", "go.opentelemetry.io/proto/"} {
			if strings.HasPrefix(pkg, heavy) {
				t.Errorf("the kit builds %s", pkg)
			}
		}
	}
	for _, pkg := range strings.Fields(run("list", "-deps", "github.com/rotorkit/rotor/server")) {
		if strings.HasPrefix(pkg, "go.opentelemetry.io/") {
			t.Errorf("package server builds %s; tracing belongs to package interceptors (see internal/conninfo)", pkg)
		}
	}
}
