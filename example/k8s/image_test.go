package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stage is one stage of a Dockerfile: its FROM line and its instructions,
// continuation lines joined.
type stage struct {
	from, name string
	instrs     []string // "KEYWORD rest", keyword upper case
}

func parseDockerfile(text string) []stage {
	var stages []stage
	var logical []string
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		logical = append(logical, cur+trimmed)
		cur = ""
	}
	for _, l := range logical {
		kw, rest, _ := strings.Cut(l, " ")
		kw = strings.ToUpper(kw)
		if kw == "FROM" {
			f := strings.Fields(rest)
			s := stage{}
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					s.name = f[i+1]
					i++
				default:
					s.from = f[i]
				}
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, kw+" "+rest)
		}
	}
	return stages
}

var (
	numericUser    = regexp.MustCompile(`^(\d+)(?::(\d+))?$`)
	shellSeparator = regexp.MustCompile(`&&|;|\|\|`)
)

// checkDockerfile checks a Dockerfile without building it: a static Go
// build, and runtime stages that hold one binary on a distroless or scratch
// base, run as a numeric non-root user (so that runAsNonRoot can verify it)
// that matches the manifests' runAsUser.
func checkDockerfile(text string, b *bundle) error {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	stages := parseDockerfile(text)
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	build, ok := byName["build"]
	if !ok || !strings.HasPrefix(build.from, "golang:") {
		return fmt.Errorf("no stage \"build\" FROM golang:… in %+v", stages)
	}
	// Every go build is static: CGO_ENABLED=0 in its own shell command or
	// in an ENV of the stage.
	envCGO := false
	var builds []string
	for _, in := range build.instrs {
		kw, rest, _ := strings.Cut(in, " ")
		envCGO = envCGO || (kw == "ENV" && strings.Contains(rest, "CGO_ENABLED=0"))
		if kw != "RUN" {
			continue
		}
		for _, cmd := range shellSeparator.Split(rest, -1) {
			if strings.Contains(cmd, "go build") {
				builds = append(builds, strings.Join(strings.Fields(cmd), " "))
			}
		}
	}
	for _, want := range []string{"-o /out/server ./example/server", "-o /out/client ./example/client"} {
		if !slices.ContainsFunc(builds, func(cmd string) bool { return strings.HasSuffix(cmd, want) }) {
			addf("the build stage has no go build … %s", want)
		}
	}
	for _, cmd := range builds {
		if !envCGO && !strings.Contains(cmd, "CGO_ENABLED=0") {
			addf("the build stage runs %q without CGO_ENABLED=0: the binary may need libc, which the runtime base lacks", cmd)
		}
	}
	if last := stages[len(stages)-1]; last.name != "server" {
		addf("the last stage is %q, want server, so that a plain docker build gives the server", last.name)
	}
	for _, name := range []string{"server", "client"} {
		s, ok := byName[name]
		if !ok {
			addf("no stage %q", name)
			continue
		}
		if !strings.HasPrefix(s.from, "gcr.io/distroless/static") && s.from != "scratch" {
			addf("stage %s is FROM %s, want gcr.io/distroless/static… or scratch", name, s.from)
		}
		var copies, users []string
		for _, in := range s.instrs {
			kw, rest, _ := strings.Cut(in, " ")
			switch kw {
			case "COPY":
				copies = append(copies, rest)
			case "USER":
				users = append(users, rest)
			case "ENTRYPOINT", "EXPOSE", "LABEL", "CMD":
			default:
				addf("stage %s: %s: a runtime stage only copies the binary in", name, in)
			}
		}
		bin := "/" + name
		if len(copies) != 1 || copies[0] != "--from=build /out/"+name+" "+bin {
			addf("stage %s copies %q, want exactly --from=build /out/%s %s", name, copies, name, bin)
		}
		if len(users) != 1 {
			addf("stage %s: USER %q, want one numeric non-root USER", name, users)
			continue
		}
		m := numericUser.FindStringSubmatch(users[0])
		if m == nil || m[1] == "0" || m[2] == "0" {
			addf("stage %s: USER %s, want a numeric non-root uid:gid (runAsNonRoot cannot check a name)", name, users[0])
			continue
		}
		uid, _ := strconv.ParseInt(m[1], 10, 64)
		for _, d := range b.deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				if imageName(c.Image) != "rotor-example-"+name {
					continue
				}
				sc := d.Spec.Template.Spec.SecurityContext
				if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != uid {
					addf("Deployment %s runs %s with securityContext %v, want runAsUser %d, the image's USER", d.Name, c.Image, sc, uid)
				}
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := decode(readManifests(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDockerfile(string(data), b); err != nil {
		t.Errorf("Dockerfile:\n%v", err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"USER 65532:65532\n# gRPC", "USER 0\n# gRPC", "stage server: USER 0"},
		{"USER 65532:65532\nENTRYPOINT [\"/client\"]", "USER nonroot\nENTRYPOINT [\"/client\"]", "stage client: USER nonroot"},
		{"CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \\\n\tgo build -trimpath -ldflags=\"-s -w\" -o /out/server", "GOOS=$TARGETOS GOARCH=$TARGETARCH \\\n\tgo build -trimpath -ldflags=\"-s -w\" -o /out/server", "without CGO_ENABLED=0"},
		{"FROM gcr.io/distroless/static-debian12:nonroot AS server", "FROM debian:12 AS server", "stage server is FROM debian:12"},
		{"COPY --from=build /out/client /client\n", "COPY --from=build /out/client /client\nCOPY --from=build /out/server /server\n", "stage client copies"},
		{"COPY --from=build /out/server /server\n", "COPY --from=build /out/server /server\nRUN [\"/server\", \"-h\"]\n", "a runtime stage only copies"},
	} {
		if strings.Count(string(data), tc.old) != 1 {
			t.Fatalf("Dockerfile: %q occurs %d times, want once", tc.old, strings.Count(string(data), tc.old))
		}
		err := checkDockerfile(strings.Replace(string(data), tc.old, tc.new, 1), b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dockerfile with %q for %q: %v; want an error saying %q", tc.new, tc.old, err, tc.want)
		}
	}
}

// TestImageBuilds builds both images and runs the server's, where a
// container daemon answers.
func TestImageBuilds(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker client installed; build the images with: docker build -t rotor-example-server:dev . && docker build -t rotor-example-client:dev --target client .")
	}
	if out, err := exec.Command(docker, "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no container daemon reachable (docker info: %v: %s); TestDockerfile checked the Dockerfile without building it", err, bytes.TrimSpace(out))
	}
	if testing.Short() {
		t.Skip("-short: building images takes minutes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, docker, args...)
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tag := "rotor-example-%s:test-" + strconv.Itoa(os.Getpid())
	for _, name := range []string{"server", "client"} {
		image := strings.Replace(tag, "%s", name, 1)
		run("build", "--target", name, "-t", image, ".")
		t.Cleanup(func() { _ = exec.Command(docker, "image", "rm", "-f", image).Run() })
		var cfg struct {
			User       string
			Entrypoint []string
		}
		if err := json.Unmarshal([]byte(run("image", "inspect", "--format", "{{json .Config}}", image)), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.User != "65532:65532" || len(cfg.Entrypoint) != 1 || cfg.Entrypoint[0] != "/"+name {
			t.Errorf("%s: user %q entrypoint %q, want 65532:65532 and /%s", image, cfg.User, cfg.Entrypoint, name)
		}
		if name == "server" {
			// The static binary runs on the bare base, read-only, and
			// refuses a bad flag the way it does anywhere.
			cmd := exec.CommandContext(ctx, docker, "run", "--rm", "--read-only", image, "-max-connection-age=100ms")
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "MaxConnectionAge") {
				t.Errorf("docker run %s -max-connection-age=100ms: %v, %s; want a refusal naming MaxConnectionAge", image, err, out)
			}
		}
	}
}
