package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"sigs.k8s.io/yaml"

	"github.com/rotorkit/rotor/example/hello"
	"github.com/rotorkit/rotor/interceptors"
	"github.com/rotorkit/rotor/internal/testkit"
	hellov1 "github.com/rotorkit/rotor/proto/gen/hello/v1"
)

// promtool checks the rules and runs their unit tests (rules_test.yaml).
func TestRules(t *testing.T) {
	promtool := tool(t, "promtool")
	run(t, promtool, "check", "rules", "rules.yaml")
	out := run(t, promtool, "test", "rules", "rules_test.yaml")
	t.Logf("%s", out)
}

// The PrometheusRule holds rules.yaml's groups exactly, so the unit tests
// of rules.yaml test it too.
func TestPrometheusRuleIsTheRulesFile(t *testing.T) {
	var file struct {
		Groups []any `json:"groups"`
	}
	readYAML(t, "rules.yaml", &file)
	var cr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	readYAML(t, "prometheusrule.yaml", &cr)
	if cr.APIVersion != "monitoring.coreos.com/v1" || cr.Kind != "PrometheusRule" || cr.Metadata.Name == "" {
		t.Errorf("prometheusrule.yaml is %s %s %q, want a named monitoring.coreos.com/v1 PrometheusRule", cr.APIVersion, cr.Kind, cr.Metadata.Name)
	}
	if len(file.Groups) == 0 || !reflect.DeepEqual(cr.Spec.Groups, file.Groups) {
		t.Errorf("prometheusrule.yaml's spec.groups differ from rules.yaml's groups; copy them over")
	}
}

// kitSeries returns the names of the series the example server exports:
// the chain's call metrics (initialized for its services) and rotor's
// connection metrics, with a histogram's _bucket, _sum and _count.
func kitSeries(t *testing.T) map[string]bool {
	t.Helper()
	reg := interceptors.NewRegistry()
	chain, err := interceptors.NewChain(interceptors.WithRegisterer(reg), interceptors.WithoutLogging())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := interceptors.NewConnMetrics(reg); err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hellov1.RegisterHelloServer(s, &hello.Service{})
	healthpb.RegisterHealthServer(s, health.NewServer())
	chain.InitializeMetrics(s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+suffix] = true
			}
		}
	}
	return names
}

// checkSeries fails for every kit-like series name in expr that the kit
// does not export.
func checkSeries(t *testing.T, where, expr string, kit map[string]bool) {
	t.Helper()
	for _, name := range seriesName.FindAllString(expr, -1) {
		if !kit[name] {
			t.Errorf("%s uses %s, which the example server does not export", where, name)
		}
	}
}

// dashboard is the part of Grafana's dashboard JSON that the test reads.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		Datasource  struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d
}

// dashboardQueries returns every panel query, keyed "<panel title> <refId>",
// with the dashboard's variables replaced.
func dashboardQueries(t *testing.T, d dashboard, namespace, job string) map[string]string {
	t.Helper()
	q := map[string]string{}
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			q[p.Title+" "+target.RefID] = strings.NewReplacer("$namespace", namespace, "$job", job).Replace(target.Expr)
		}
	}
	return q
}

var selector = regexp.MustCompile(`\b((?:grpc_server|rotor)_[a-z_]+)(\{[^}]*\})?`)

// The dashboard: every panel described, on the chosen data source, every
// query parsed by promtool, on series the kit exports, for the chosen
// namespace and job; and the panels the issue asks for are there.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard.json needs a uid and a title")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name+":"+v.Type)
	}
	if want := []string{"datasource:datasource", "namespace:query", "job:query"}; !slices.Equal(vars, want) {
		t.Errorf("variables %v, want %v", vars, want)
	}
	kit := kitSeries(t)
	all := ""
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if p.Title == "" || p.Description == "" || p.Type != "timeseries" || ids[p.ID] {
			t.Errorf("panel %d %q: want a unique id, a title, a description (README.md has them too) and a time series", p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q queries %v, want the dashboard's ${datasource}", p.Title, p.Datasource)
		}
		for _, target := range p.Targets {
			where := fmt.Sprintf("panel %q query %s", p.Title, target.RefID)
			checkSeries(t, where, target.Expr, kit)
			for _, m := range selector.FindAllStringSubmatch(target.Expr, -1) {
				if !strings.Contains(m[2], `namespace="$namespace"`) || !strings.Contains(m[2], `job="$job"`) {
					t.Errorf("%s: %s%s does not select the dashboard's $namespace and $job", where, m[1], m[2])
				}
			}
			all += target.Expr + "\n"
		}
	}
	// What the issue asks the dashboard to show.
	for what, want := range map[string]string{
		"per-pod share of calls":  "/ ignoring(pod) group_left",
		"imbalance max/mean":      "max(sum by (pod) (rate(grpc_server_handled_total",
		"rotations by reason":     "sum by (reason) (rate(rotor_rotations_total",
		"connections per pod":     "sum by (pod) (rotor_connections_open",
		"calls without the kit's": `grpc_service!~"grpc.health.v1.Health|rotor.fairshare.v1.LoadService"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel shows the %s (%s)", what, want)
		}
	}
	for name := range kit {
		if strings.HasPrefix(name, "rotor_fairshare_") && !strings.Contains(all, name) {
			t.Errorf("no panel shows the fair-share state %s", name)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		checkPromQL(t, promtool, dashboardQueries(t, d, "ns", "job"))
	} else {
		t.Log("promtool missing: the queries were not parsed")
	}
}

// readmeQueries returns the PromQL that README.md quotes inline.
func readmeQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("`((?:sum|max|avg|histogram_quantile) ?(?:by )?\\([^`]*)`").FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	return out
}

// The PromQL of interceptors/doc.go parses, uses series the kit exports,
// and README.md quotes it word for word. The lab test runs it.
func TestDocumentedQueries(t *testing.T) {
	docs := documentedQueries(t)
	kit := kitSeries(t)
	exprs := map[string]string{}
	byText := map[string]bool{}
	for i, q := range docs {
		checkSeries(t, "interceptors/doc.go", q, kit)
		exprs[fmt.Sprint("doc", i)] = q
		byText[normalize(q)] = true
	}
	readme := readmeQueries(t)
	if len(readme) == 0 {
		t.Error("README.md quotes no PromQL; it should show the share and rotation queries")
	}
	for _, q := range readme {
		if !byText[normalize(q)] {
			t.Errorf("README.md quotes %q, which interceptors/doc.go does not document", q)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		checkPromQL(t, promtool, exprs)
	} else {
		t.Log("promtool missing: the queries were not parsed")
	}
}

// kubectl (or kustomize) builds the monitoring kustomization: the
// PodMonitor scrapes the server pods' admin port, the PrometheusRule is
// there, and the dashboard's ConfigMap holds dashboard.json for Grafana's
// sidecar.
func TestKustomization(t *testing.T) {
	out := testkit.Kustomize(t, "")
	dash, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	servers := deployments(t, "server.yaml")
	ns := exampleNamespace(t)
	kinds := map[string]bool{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string            `json:"name"`
				Namespace string            `json:"namespace"`
				Labels    map[string]string `json:"labels"`
			} `json:"metadata"`
			Data map[string]string `json:"data"`
			Spec struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				PodMetricsEndpoints []struct {
					Port string `json:"port"`
				} `json:"podMetricsEndpoints"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		kinds[obj.Kind] = true
		if obj.Metadata.Namespace != ns {
			t.Errorf("%s %s is in namespace %q, want the example's %q", obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace, ns)
		}
		switch obj.Kind {
		case "ConfigMap":
			if obj.Data["dashboard.json"] != string(dash) || obj.Metadata.Labels["grafana_dashboard"] != "1" {
				t.Errorf("ConfigMap %s: want dashboard.json as is, labelled grafana_dashboard: \"1\"", obj.Metadata.Name)
			}
		case "PodMonitor":
			if len(obj.Spec.PodMetricsEndpoints) != 1 {
				t.Fatalf("PodMonitor: %d endpoints, want one", len(obj.Spec.PodMetricsEndpoints))
			}
			for _, s := range servers {
				matches := true
				for k, v := range obj.Spec.Selector.MatchLabels {
					matches = matches && s.labels[k] == v
				}
				hasPort := slices.ContainsFunc(s.ports, func(p containerPort) bool { return p.name == obj.Spec.PodMetricsEndpoints[0].Port })
				if !matches || !hasPort {
					t.Errorf("PodMonitor selects %v port %q; the server Deployment %s has labels %v and ports %v",
						obj.Spec.Selector.MatchLabels, obj.Spec.PodMetricsEndpoints[0].Port, s.deployment, s.labels, s.ports)
				}
			}
		}
	}
	for _, k := range []string{"ConfigMap", "PodMonitor", "PrometheusRule"} {
		if !kinds[k] {
			t.Errorf("the kustomization builds no %s", k)
		}
	}
}
