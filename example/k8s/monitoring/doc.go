// Package monitoring holds the monitoring of rotor's example as files to
// ship, and the tests that keep them honest; there is nothing to import.
//
// The files: rules.yaml, Prometheus alerting rules (an imbalance alert,
// RotorCallImbalance, and RotorFairShareNoPeers), with their promtool unit
// tests in rules_test.yaml; prometheusrule.yaml, the same rules as a
// prometheus-operator PrometheusRule; podmonitor.yaml, the operator's
// scrape of the server pods; scrape.yaml, the same scrape for a Prometheus
// of your own, through Kubernetes service discovery; dashboard.json, a
// Grafana dashboard (README.md describes each panel); kustomization.yaml,
// the operator's objects and the dashboard as a ConfigMap for Grafana's
// sidecar, kept apart from example/k8s so that the example needs no CRDs.
//
// The tests (Prometheus and promtool from Debian's prometheus package,
// which tools/install-deps.sh installs as root; they skip without them, and
// fail where install-deps.sh ran as root): promtool checks the rules and
// runs their unit tests; the PrometheusRule must hold exactly rules.yaml's
// groups; the scrape job's relabeling is run by promtool on pods as
// Kubernetes describes them and must keep only the server pods' admin port,
// labelled namespace, pod and job; the dashboard's queries must parse, use
// only series the kit exports, and select by the dashboard's variables; the
// PromQL that interceptors/doc.go and README.md document must parse and
// agree with each other. A lab test (internal/kubelab, root) then runs a
// real Prometheus with this scrape job against the example server's pods
// during a scale-up from 2 to 5 pods and checks that the documented
// queries say what the documentation says: each pod's share of the calls
// (against the calls the client saw each pod answer), the imbalance,
// rotations by reason (against the pods' own counters) and connections per
// pod (against each pod's /stats); that every dashboard query returns
// data; and that the rules evaluate without error.
//
// Debian's Prometheus (2.42) is built without Kubernetes service
// discovery, so the lab feeds the same job through file service discovery,
// with the labels Kubernetes discovery would give each pod.
package monitoring
