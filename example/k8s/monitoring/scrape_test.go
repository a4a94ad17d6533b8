package monitoring

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// targetGroup is a group of targets as Prometheus's file service discovery
// reads them.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// podTargets describes a pod the way Prometheus's Kubernetes discovery
// (role: pod) does: one target per container port, labelled with the pod's
// namespace, name, labels and annotations, and the port's name and number;
// a pod without ports is one target with no port.
func podTargets(namespace, name, ip string, tmpl podTemplate) []targetGroup {
	base := map[string]string{
		"__meta_kubernetes_namespace": namespace,
		"__meta_kubernetes_pod_name":  name,
		"__meta_kubernetes_pod_ip":    ip,
	}
	for k, v := range tmpl.labels {
		base["__meta_kubernetes_pod_label_"+unsafe.ReplaceAllString(k, "_")] = v
		base["__meta_kubernetes_pod_labelpresent_"+unsafe.ReplaceAllString(k, "_")] = "true"
	}
	for k, v := range tmpl.annotations {
		base["__meta_kubernetes_pod_annotation_"+unsafe.ReplaceAllString(k, "_")] = v
		base["__meta_kubernetes_pod_annotationpresent_"+unsafe.ReplaceAllString(k, "_")] = "true"
	}
	if len(tmpl.ports) == 0 {
		return []targetGroup{{Targets: []string{ip}, Labels: base}}
	}
	var groups []targetGroup
	for _, p := range tmpl.ports {
		l := maps.Clone(base)
		l["__meta_kubernetes_pod_container_name"] = p.container
		l["__meta_kubernetes_pod_container_port_name"] = p.name
		l["__meta_kubernetes_pod_container_port_number"] = fmt.Sprint(p.number)
		l["__meta_kubernetes_pod_container_port_protocol"] = "TCP"
		groups = append(groups, targetGroup{Targets: []string{fmt.Sprintf("%s:%d", ip, p.number)}, Labels: l})
	}
	return groups
}

// podTemplate is what discovery sees of a Deployment's pods.
type podTemplate struct {
	deployment  string
	labels      map[string]string
	annotations map[string]string
	ports       []containerPort
}

type containerPort struct {
	container, name string
	number          int32
}

// deployments reads the Deployments of a manifest file of example/k8s.
func deployments(t *testing.T, file string) []podTemplate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Fatal(err)
	}
	var out []podTemplate
	for _, doc := range strings.Split(string(data), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		pt := podTemplate{deployment: d.Name, labels: d.Spec.Template.Labels, annotations: d.Spec.Template.Annotations}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				pt.ports = append(pt.ports, containerPort{container: c.Name, name: p.Name, number: p.ContainerPort})
			}
		}
		out = append(out, pt)
	}
	return out
}

// exampleNamespace is the namespace example/k8s's kustomization puts
// everything in.
func exampleNamespace(t *testing.T) string {
	t.Helper()
	var k struct {
		Namespace string `json:"namespace"`
	}
	data, err := os.ReadFile(filepath.Join("..", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil || k.Namespace == "" {
		t.Fatalf("../kustomization.yaml names no namespace: %v", err)
	}
	return k.Namespace
}

// scrapeJob returns scrape.yaml's one job with its Kubernetes discovery
// replaced by file discovery of targetsFile, and the rest of the
// configuration, in a form ready to write: how the lab runs this very job
// (Debian's Prometheus has no Kubernetes discovery).
func scrapeJob(t *testing.T, targetsFile, rulesFile, interval string) (config map[string]any, job string, k8sNamespaces []string) {
	t.Helper()
	var cfg map[string]any
	readYAML(t, "scrape.yaml", &cfg)
	jobs, _ := cfg["scrape_configs"].([]any)
	if len(jobs) != 1 {
		t.Fatalf("scrape.yaml has %d scrape configs, want one", len(jobs))
	}
	j := jobs[0].(map[string]any)
	job, _ = j["job_name"].(string)
	var sd []struct {
		Role       string `json:"role"`
		Namespaces struct {
			Names []string `json:"names"`
		} `json:"namespaces"`
	}
	raw, _ := json.Marshal(j["kubernetes_sd_configs"])
	if err := json.Unmarshal(raw, &sd); err != nil || len(sd) != 1 || sd[0].Role != "pod" {
		t.Fatalf("scrape.yaml: want one kubernetes_sd_configs entry with role pod, got %s (%v)", raw, err)
	}
	delete(j, "kubernetes_sd_configs")
	j["file_sd_configs"] = []any{map[string]any{"files": []string{targetsFile}, "refresh_interval": "1s"}}
	cfg["rule_files"] = []string{rulesFile}
	if interval != "" {
		cfg["global"] = map[string]any{"scrape_interval": interval, "evaluation_interval": interval}
	}
	return cfg, job, sd[0].Namespaces.Names
}

// scrapeResult is one target of promtool check service-discovery.
type scrapeResult struct {
	Discovered map[string]string `json:"discoveredLabels"`
	Labels     map[string]string `json:"labels"`
}

// The scrape job, given pods as Kubernetes describes them (the example's
// own Deployments, from example/k8s), keeps exactly the server pods' admin
// port, labelled with the namespace, the pod's name and the job that the
// rules and the dashboard group by; the clients and the server's gRPC and
// REST ports are dropped. promtool runs the job's relabeling.
func TestScrapeJobKeepsTheServersAdminPort(t *testing.T) {
	promtool := tool(t, "promtool")
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.json")
	cfg, job, namespaces := scrapeJob(t, targets, mustAbs(t, "rules.yaml"), "")
	ns := exampleNamespace(t)
	if !slices.Equal(namespaces, []string{ns}) {
		t.Errorf("scrape.yaml discovers pods in %v, want the example's namespace [%s]", namespaces, ns)
	}

	var groups []targetGroup
	servers := map[string]string{} // pod name → its admin target
	ip := 10
	for _, file := range []string{"server.yaml", "client.yaml"} {
		for _, d := range deployments(t, file) {
			for i := range 2 {
				name, addr := fmt.Sprintf("%s-7d9f8-%d", d.deployment, i), fmt.Sprintf("10.0.0.%d", ip)
				ip++
				groups = append(groups, podTargets(ns, name, addr, d)...)
				if file == "server.yaml" {
					for _, p := range d.ports {
						if fmt.Sprint(p.number) == d.annotations["prometheus.io/port"] {
							servers[name] = fmt.Sprintf("%s:%d", addr, p.number)
						}
					}
				}
			}
		}
	}
	if len(servers) != 2 {
		t.Fatalf("server.yaml's pods have no port that prometheus.io/port names: %v", servers)
	}
	data, _ := json.Marshal(groups)
	if err := os.WriteFile(targets, data, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yaml")
	writeYAML(t, path, cfg)
	run(t, promtool, "check", "config", path)

	var results []scrapeResult
	if err := json.Unmarshal(run(t, promtool, "check", "service-discovery", "--timeout=2s", path, job), &results); err != nil {
		t.Fatal(err)
	}
	kept := map[string]map[string]string{}
	for _, r := range results {
		if len(r.Labels) > 0 {
			kept[r.Discovered["__meta_kubernetes_pod_name"]+" "+r.Labels["__address__"]] = r.Labels
		}
	}
	if len(kept) != len(servers) {
		t.Errorf("the job keeps %d targets, want the %d server pods' admin ports: %v", len(kept), len(servers), slices.Sorted(maps.Keys(kept)))
	}
	for pod, addr := range servers {
		l, ok := kept[pod+" "+addr]
		if !ok {
			t.Errorf("the job drops %s's admin port %s", pod, addr)
			continue
		}
		want := map[string]string{"namespace": ns, "pod": pod, "job": job, "instance": addr}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s: label %s = %q, want %q", pod, k, l[k], v)
			}
		}
	}
}

func mustAbs(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
