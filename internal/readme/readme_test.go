package readme

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rotorkit/rotor/internal/testkit"
)

// snippetImports maps the package names the README's snippets use to the
// import paths a user's program gives them (the README names pb's, hellov1's
// and proto's in the text around them).
var snippetImports = map[string]string{
	"context":      "context",
	"log":          "log",
	"syscall":      "syscall",
	"time":         "time",
	"grpc":         "google.golang.org/grpc",
	"insecure":     "google.golang.org/grpc/credentials/insecure",
	"sdktrace":     "go.opentelemetry.io/otel/sdk/trace",
	"server":       "github.com/rotorkit/rotor/server",
	"gateway":      "github.com/rotorkit/rotor/gateway",
	"interceptors": "github.com/rotorkit/rotor/interceptors",
	"proto":        "github.com/rotorkit/rotor/proto",
	"hellov1":      "github.com/rotorkit/rotor/proto/gen/hello/v1",
	"pb":           "github.com/rotorkit/rotor/proto/gen/hello/v1",
}

// snippetContext declares what the snippets take from the program around
// them, as the README's text describes it.
const snippetContext = `
type myService struct{ hellov1.UnimplementedHelloServer }

var (
	ctx    context.Context          // the gateway's and Draining's
	srv    *server.Server           // "srv the gRPC *server.Server"
	stream grpc.ServerStream        // Draining's: a streaming handler's
	ticker *time.Ticker             // Draining's: the stream's own pace
	tp     *sdktrace.TracerProvider // "tp: an OpenTelemetry SDK TracerProvider"
)
`

type snippet struct {
	line int // README.md's line of the snippet's first line
	text string
}

// goSnippets returns the README's ```go blocks. A fence that names Go
// another way (```Go, ```golang, ```go title=…) is an error, so that no Go
// block is left out unseen.
func goSnippets(t *testing.T, readme []byte) []snippet {
	t.Helper()
	var (
		out  []snippet
		cur  *snippet
		body []string
	)
	for i, line := range strings.Split(string(readme), "\n") {
		info, fence := strings.CutPrefix(strings.TrimSpace(line), "```")
		info = strings.TrimSpace(info)
		lower := strings.ToLower(info)
		isGo := fence && (lower == "go" || lower == "golang" || strings.HasPrefix(lower, "go ") || strings.HasPrefix(lower, "golang "))
		switch {
		case cur == nil && isGo:
			if info != "go" {
				t.Errorf("README.md:%d: fence ```%s: write ```go, the fence this test builds, or ```text for a block that is not to build", i+1, info)
			}
			cur = &snippet{line: i + 2}
			body = nil
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = strings.Join(body, "\n")
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body = append(body, line)
		}
	}
	if cur != nil {
		t.Fatalf("README.md: the ```go block from line %d is not closed", cur.line-1)
	}
	return out
}

// program makes one main package of the snippets: each is the body of a
// function of its own, under a //line directive so that the compiler's
// errors name README.md's lines. A snippet is a fragment of a program, so
// the variables it declares and does not use again are used after it, and
// only the packages the snippets name are imported.
func program(t *testing.T, snippets []snippet) []byte {
	t.Helper()
	var funcs strings.Builder
	for i, s := range snippets {
		fmt.Fprintf(&funcs, "\nfunc snippet%d() error {\n//line README.md:%d\n%s\n\treturn nil\n}\n", i, s.line, s.text)
	}
	draft := "package main\n" + snippetContext + funcs.String()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "snippets.go", draft, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("a README snippet does not parse as a function body: %v", err)
	}

	names := map[string]bool{}
	ast.Inspect(file, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				names[id.Name] = true
			}
		}
		return true
	})
	var imports []string
	for name := range names {
		if path, ok := snippetImports[name]; ok {
			imports = append(imports, fmt.Sprintf("\t%s %q", name, path))
		}
	}
	sort.Strings(imports)

	var out strings.Builder
	out.WriteString("package main\n\nimport (\n" + strings.Join(imports, "\n") + "\n)\n" + snippetContext)
	for i, s := range snippets {
		var uses []string
		for _, name := range declared(file, fmt.Sprintf("snippet%d", i)) {
			uses = append(uses, "\t_ = "+name)
		}
		fmt.Fprintf(&out, "\nfunc snippet%d() error {\n//line README.md:%d\n%s\n", i, s.line, s.text)
		// Back to the program's own lines: the directive's next line is
		// the one after the directive itself.
		fmt.Fprintf(&out, "//line snippets.go:%d\n%s\n\treturn nil\n}\n", strings.Count(out.String(), "\n")+2, strings.Join(uses, "\n"))
	}
	out.WriteString("\nfunc main() {\n")
	for i := range snippets {
		fmt.Fprintf(&out, "\t_ = snippet%d\n", i)
	}
	out.WriteString("}\n")
	return []byte(out.String())
}

// declared returns the names fn's body declares at its top level.
func declared(file *ast.File, fn string) []string {
	var names []string
	add := func(id *ast.Ident) {
		if id.Name != "_" && !slices.Contains(names, id.Name) {
			names = append(names, id.Name)
		}
	}
	for _, d := range file.Decls {
		f, ok := d.(*ast.FuncDecl)
		if !ok || f.Name.Name != fn {
			continue
		}
		for _, st := range f.Body.List {
			switch st := st.(type) {
			case *ast.AssignStmt:
				if st.Tok == token.DEFINE {
					for _, e := range st.Lhs {
						if id, ok := e.(*ast.Ident); ok {
							add(id)
						}
					}
				}
			case *ast.DeclStmt:
				if g, ok := st.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
					for _, spec := range g.Specs {
						for _, id := range spec.(*ast.ValueSpec).Names {
							add(id)
						}
					}
				}
			}
		}
	}
	return names
}

// Every ```go block of the README compiles, against the root module alone
// as a user's program gets it (GOWORK=off), with the imports the README
// names and the context its text gives each snippet (snippetContext).
func TestREADMESnippetsBuild(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	snippets := goSnippets(t, readme)
	if len(snippets) == 0 {
		t.Fatal("README.md has no ```go block: did the fences change?")
	}
	src := program(t, snippets)
	openSources(t, filepath.Join("..", ".."))

	// The program is built in place of a directory that does not exist
	// (go build's -overlay), inside this module, so that it resolves the
	// rotor packages and their dependencies as the module requires them;
	// nothing is written to the source tree.
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	file := filepath.Join(tmp, "snippets.go")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(here, "testdata", "snippets", "snippets.go"): file},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"build", "-overlay", filepath.Join(tmp, "overlay.json"), "-o", os.DevNull}
	if testkit.Race {
		// Reuse the packages the race-enabled run has compiled.
		args = append(args, "-race")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to build the snippets with: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), goTool, append(args, "./testdata/snippets")...)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's Go snippets (%d blocks) do not build: %v\n%s\n"+
			"(a snippet that names another package needs it in snippetImports, and one that uses a name of the program "+
			"around it needs that in snippetContext, both in internal/readme/readme_test.go)\nthe program built:\n%s",
			len(snippets), err, stderr.String(), numbered(src))
	}
}

// openSources opens the root module's Go files (tests and testdata left
// out), go.mod and go.sum. go test reuses a cached pass until a file the
// test opened changes; the build the test runs reads these, and the test
// binary itself does not change with them (a blank import would not do:
// the linker leaves out what only the snippets call, so an option renamed
// left the cached pass standing). The other modules (a directory with a
// go.mod of its own) are not the root module's.
func openSources(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		top := filepath.Dir(path) == root && (name == "go.mod" || name == "go.sum")
		if top || strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			_, err := os.ReadFile(path)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func numbered(src []byte) string {
	var b strings.Builder
	for i, line := range strings.Split(string(src), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, line)
	}
	return b.String()
}
