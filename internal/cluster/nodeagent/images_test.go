package nodeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImageName(t *testing.T) {
	for ref, want := range map[string]string{
		"rotor-example-server":                  "rotor-example-server",
		"rotor-example-server:dev":              "rotor-example-server",
		"rotor-example-server@sha256:abc":       "rotor-example-server",
		"rotor-example-server:dev@sha256:abc":   "rotor-example-server",
		"localhost:5000/rotor-example-server:1": "localhost:5000/rotor-example-server",
		"localhost:5000/rotor-example-server":   "localhost:5000/rotor-example-server",
	} {
		if got := imageName(ref); got != want {
			t.Errorf("imageName(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestPullAndLookup(t *testing.T) {
	src := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "images")
	s, err := pullImages(dir, map[string]Image{"rotor-example-server": {Binary: src, Entrypoint: "/server"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.lookup("rotor-example-server:v9")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(img.Binary)
	if err != nil || filepath.Dir(img.Binary) != dir || info.Mode().Perm() != 0o755 {
		t.Errorf("pulled binary %s: %v, %v; want mode 0755 in %s", img.Binary, info.Mode(), err, dir)
	}
	_, err = s.lookup("nginx:1.27")
	if err == nil || !strings.Contains(err.Error(), `failed to pull image "nginx:1.27"`) || !strings.Contains(err.Error(), "rotor-example-server") {
		t.Errorf("lookup of an unknown image: %v; want an error naming it and the images known", err)
	}
}
