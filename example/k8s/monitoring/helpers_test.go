package monitoring

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/rotorkit/rotor/internal/testkit"
)

var repoRoot = testkit.RepoRoot()

// tool returns the path of a program of Debian's prometheus package. It
// skips the test when the program is missing, or fails it where
// tools/install-deps.sh ran as root and should have installed it.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	testkit.Missing(t, name, "apt-get install prometheus")
	return ""
}

// run runs a program for at most a minute and returns its standard output;
// a failure carries both outputs.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// readYAML decodes a YAML file of this directory into v, strictly when v
// is a struct.
func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// writeYAML writes v as YAML to path.
func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkPromQL has promtool parse every expression (as recording rules,
// which is what promtool check rules parses), and fails naming the ones it
// refuses.
func checkPromQL(t *testing.T, promtool string, exprs map[string]string) {
	t.Helper()
	var rules []map[string]string
	for name, expr := range exprs {
		rules = append(rules, map[string]string{"record": "check:" + sanitize(name), "expr": expr})
	}
	path := filepath.Join(t.TempDir(), "exprs.yaml")
	writeYAML(t, path, map[string]any{"groups": []any{map[string]any{"name": "check", "rules": rules}}})
	if out, err := runErr(promtool, "check", "rules", path); err != nil {
		t.Errorf("promtool refuses a query: %v\n%s", err, out)
	}
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

func sanitize(s string) string { return nonName.ReplaceAllString(s, "_") }

// seriesNames are the metric names a PromQL expression uses, of the kit's
// two families.
var seriesName = regexp.MustCompile(`\b(?:grpc_server|rotor)_[a-z_]+\b`)

// documentedQueries returns the PromQL of interceptors/doc.go's PromQL
// section: each indented code line that starts flush opens a query, lines
// indented further continue it.
func documentedQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "interceptors", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	var queries []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		text, ok := strings.CutPrefix(line, "//")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(text, " # "):
			in = text == " # PromQL"
		case !in:
		case strings.HasPrefix(text, "\t  "):
			if len(queries) == 0 {
				t.Fatalf("interceptors/doc.go: a continued query with no start: %q", line)
			}
			queries[len(queries)-1] += "\n" + strings.TrimPrefix(text, "\t")
		case strings.HasPrefix(text, "\t"):
			queries = append(queries, strings.TrimPrefix(text, "\t"))
		}
	}
	if len(queries) == 0 {
		t.Fatal("interceptors/doc.go documents no PromQL (under # PromQL)")
	}
	return queries
}

// normalize folds white space, so that a query reads the same over one
// line or several.
func normalize(q string) string { return strings.Join(strings.Fields(q), " ") }
