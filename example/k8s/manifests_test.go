package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/rotorkit/rotor/internal/testkit"
)

var (
	repoRoot     string
	serverBinary string // example/server, built by TestMain
)

// The flags of the example's commands, read from their -h by TestMain, so
// that the manifests are checked against the real command lines.
var serverFlags, clientFlags []flagDef

func TestMain(m *testing.M) {
	repoRoot = testkit.RepoRoot()
	dir, err := testkit.BuildDir("rotor-k8s-")
	if err != nil {
		panic(err)
	}
	serverFlags, err = commandFlags(dir, "server")
	if err == nil {
		clientFlags, err = commandFlags(dir, "client")
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// commandFlags builds ./example/<name> into dir and reads its flags from -h.
func commandFlags(dir, name string) ([]flagDef, error) {
	bin, err := testkit.Build(dir, "github.com/rotorkit/rotor/example/"+name)
	if err != nil {
		return nil, err
	}
	if name == "server" {
		serverBinary = bin
	}
	// -h prints the flags and exits with an error status; the output is what
	// matters.
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	defs := parseUsage(string(out))
	if len(defs) == 0 {
		return nil, fmt.Errorf("example/%s -h listed no flags:\n%s", name, out)
	}
	return defs, nil
}

// readManifests returns every YAML file of this directory.
func readManifests(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no manifests here: %v", err)
	}
	files := map[string][]byte{}
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = data
	}
	return files
}

func TestUsageParsing(t *testing.T) {
	find := func(defs []flagDef, name string) flagDef {
		i := slices.IndexFunc(defs, func(d flagDef) bool { return d.name == name })
		if i < 0 {
			t.Fatalf("-h lists no -%s", name)
		}
		return defs[i]
	}
	for _, tc := range []struct {
		defs   []flagDef
		name   string
		def    string
		isBool bool
	}{
		{serverFlags, "grpc-addr", ":50051", false},
		{serverFlags, "admin-addr", "127.0.0.1:9090", false},
		{serverFlags, "admin-public", "", true},
		{serverFlags, "max-connection-age", "30s", false},
		{serverFlags, "peer-dns", "", false},
		{clientFlags, "target", "localhost:50051", false},
	} {
		if d := find(tc.defs, tc.name); d.def != tc.def || d.isBool != tc.isBool {
			t.Errorf("-%s parsed as default %q bool %v, want %q %v", tc.name, d.def, d.isBool, tc.def, tc.isBool)
		}
	}
}

func TestManifests(t *testing.T) {
	b, err := decode(readManifests(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := check(b, serverFlags, clientFlags); err != nil {
		t.Errorf("the manifests break these rules:\n%v", err)
	}
	t.Logf("%d files: %d Deployments, %d Services, %d HPAs, %d PDBs, %d Namespaces",
		len(b.files), len(b.deployments), len(b.services), len(b.hpas), len(b.pdbs), len(b.namespaces))
}

// TestKustomizeBuild checks what kubectl apply -k would send, where kubectl
// or kustomize is installed.
func TestKustomizeBuild(t *testing.T) {
	out := testkit.Kustomize(t, "; TestManifests checked the files themselves")
	b, err := decode(map[string][]byte{"build.yaml": out})
	if err != nil {
		t.Fatal(err)
	}
	if err := check(b, serverFlags, clientFlags); err != nil {
		t.Errorf("kustomize's output breaks these rules:\n%v", err)
	}
}

// TestCheckerCatches breaks one rule at a time, in memory, and expects the
// decoder or the checker to say so.
func TestCheckerCatches(t *testing.T) {
	server := func(b *bundle) *appsv1.Deployment { return b.deployment("hello-server") }
	container := func(b *bundle) *corev1.Container { return &server(b).Spec.Template.Spec.Containers[0] }
	clientArgs := func(name string, args ...string) func(*bundle) {
		return func(b *bundle) { b.deployment(name).Spec.Template.Spec.Containers[0].Args = args }
	}
	setArg := func(flag, value string) func(*bundle) {
		return func(b *bundle) {
			c := container(b)
			i := slices.IndexFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "-"+flag+"=") })
			if i < 0 {
				c.Args = append(c.Args, "-"+flag+"="+value)
			} else {
				c.Args[i] = "-" + flag + "=" + value
			}
		}
	}
	for _, tc := range []struct {
		name string
		text func(files map[string][]byte) // a change to the YAML text
		obj  func(b *bundle)               // or to the decoded objects
		want string                        // in the error
	}{
		{
			name: "unknown field",
			text: replace("server.yaml", "  replicas: 2\n", "  replicas: 2\n  replica: 3\n"),
			want: `unknown field "replica"`,
		},
		{
			name: "duplicated key",
			text: replace("server.yaml", "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n"),
			want: `"replicas" already set`,
		},
		{
			name: "unknown field deep in a pod",
			text: replace("server.yaml", "      terminationGracePeriodSeconds: 60\n", "      terminationGracePeriod: 60\n"),
			want: `unknown field "terminationGracePeriod"`,
		},
		{
			name: "an apiVersion the cluster may not serve",
			text: replace("hpa.yaml", "autoscaling/v2\n", "autoscaling/v2beta2\n"),
			want: "autoscaling/v2beta2",
		},
		{
			name: "a file the kustomization does not list",
			text: replace("kustomization.yaml", "  - pdb.yaml\n", ""),
			want: "want every manifest file",
		},
		{
			name: "grace period shorter than delay + drain",
			obj:  func(b *bundle) { *server(b).Spec.Template.Spec.TerminationGracePeriodSeconds = 20 },
			want: "terminationGracePeriodSeconds 20s is shorter than -shutdown-delay 5s + -drain-timeout 45s",
		},
		{
			name: "drain timeout raised past the grace period",
			obj:  setArg("drain-timeout", "90s"),
			want: "terminationGracePeriodSeconds 1m0s is shorter",
		},
		{
			name: "Service selector that selects nothing",
			obj:  func(b *bundle) { b.service("hello").Spec.Selector["app.kubernetes.io/name"] = "hello-srv" },
			want: "Service hello: selector map[app.kubernetes.io/name:hello-srv] selects no Deployment's pods",
		},
		{
			name: "Deployment selector that misses its pods",
			obj: func(b *bundle) {
				server(b).Spec.Selector.MatchLabels = map[string]string{"app.kubernetes.io/name": "other"}
			},
			want: "does not select its own pod labels",
		},
		{
			name: "headless Service with a cluster IP",
			obj:  func(b *bundle) { b.service("hello-headless").Spec.ClusterIP = "" },
			want: "no headless Service",
		},
		{
			name: "headless Service publishing pods that are not ready",
			obj:  func(b *bundle) { b.service("hello-headless").Spec.PublishNotReadyAddresses = true },
			want: "publishNotReadyAddresses must be false",
		},
		{
			name: "Service targeting an undeclared port",
			obj:  func(b *bundle) { b.service("hello").Spec.Ports[0].TargetPort.StrVal = "grcp" },
			want: "targetPort grcp is not a port declared",
		},
		{
			name: "readiness probe on an undeclared port",
			obj:  func(b *bundle) { container(b).ReadinessProbe.GRPC.Port = 50052 },
			want: "readinessProbe targets port 50052, which the container does not declare",
		},
		{
			name: "liveness probe on the REST port",
			obj:  func(b *bundle) { container(b).LivenessProbe.GRPC.Port = 8080 },
			want: "livenessProbe targets port 8080, want the gRPC port 50051",
		},
		{
			name: "HTTP readiness probe",
			obj: func(b *bundle) {
				container(b).ReadinessProbe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz"}}
			},
			want: "readinessProbe is not a gRPC probe",
		},
		{
			name: "liveness that could kill a draining pod",
			obj:  func(b *bundle) { container(b).LivenessProbe.PeriodSeconds = 5 },
			want: "livenessProbe fails after 30s of NOT_SERVING",
		},
		{
			name: "server listening on a port the container does not declare",
			obj:  setArg("grpc-addr", ":6000"),
			want: "-grpc-addr listens on 6000, which no container port declares",
		},
		{
			name: "declared port nothing listens on",
			obj:  setArg("admin-addr", "127.0.0.1:9090"),
			want: "declares port 9090 (admin)",
		},
		{
			name: "misspelt server flag",
			obj:  setArg("max-conection-age", "30s"),
			want: "flag provided but not defined: -max-conection-age",
		},
		{
			name: "environment variable that names no flag",
			obj: func(b *bundle) {
				container(b).Env = append(container(b).Env, corev1.EnvVar{Name: "ROTOR_MAX_AGE", Value: "30s"})
			},
			want: "ROTOR_MAX_AGE names no flag",
		},
		{
			name: "configuration the server refuses",
			obj:  setArg("max-connection-age", "100ms"),
			want: "MaxConnectionAge",
		},
		{
			name: "no POD_NAME",
			obj: func(b *bundle) {
				c := container(b)
				c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAME" })
			},
			want: "POD_NAME must come from the downward API",
		},
		{
			name: "public admin endpoint without a token",
			obj: func(b *bundle) {
				c := container(b)
				c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "ROTOR_ADMIN_TOKEN" })
			},
			want: "no admin token is set",
		},
		{
			name: "peer watcher on the ClusterIP Service",
			obj:  setArg("peer-dns", "hello"),
			want: "-peer-dns=hello names a Service that is not headless",
		},
		{
			name: "one replica",
			obj:  func(b *bundle) { *server(b).Spec.Replicas = 1 },
			want: "replicas 1, want at least 2",
		},
		{
			name: "writable root file system",
			obj:  func(b *bundle) { *container(b).SecurityContext.ReadOnlyRootFilesystem = false },
			want: "readOnlyRootFilesystem must be true",
		},
		{
			name: "no memory limit",
			obj:  func(b *bundle) { delete(container(b).Resources.Limits, corev1.ResourceMemory) },
			want: "no memory limit",
		},
		{
			name: "HPA scaling a Deployment that does not exist",
			obj:  func(b *bundle) { b.hpas[0].Spec.ScaleTargetRef.Name = "hello" },
			want: `scaleTargetRef apps/v1 Deployment "hello" is not a Deployment of these manifests`,
		},
		{
			name: "client targeting a Service that does not exist",
			obj:  clientArgs("hello-client-clusterip", "-target=helo:50051"),
			want: `names Service "helo", which these manifests do not define`,
		},
		{
			name: "client targeting a port the Service does not expose",
			obj:  clientArgs("hello-client-clusterip", "-target=hello:50052"),
			want: "uses port 50052, which Service hello does not expose",
		},
		{
			name: "no client through the headless Service",
			obj:  clientArgs("hello-client-headless", "-target=hello:50051"),
			want: "no client targets a headless Service with a dns:/// target",
		},
		{
			name: "headless Service without dns:///",
			obj:  clientArgs("hello-client-headless", "-target=hello-headless:50051"),
			want: "names a headless Service without the dns:/// scheme",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := readManifests(t)
			if tc.text != nil {
				tc.text(files)
			}
			b, err := decode(files)
			if err == nil {
				if tc.obj != nil {
					tc.obj(b)
				}
				err = check(b, serverFlags, clientFlags)
			}
			if err == nil {
				t.Fatalf("no error; want one saying %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to say %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// replace returns a text change of file that must apply exactly once.
func replace(file, old, new string) func(map[string][]byte) {
	return func(files map[string][]byte) {
		s := string(files[file])
		if strings.Count(s, old) != 1 {
			panic(fmt.Sprintf("%s: %q occurs %d times, want once", file, old, strings.Count(s, old)))
		}
		files[file] = []byte(strings.Replace(s, old, new, 1))
	}
}
