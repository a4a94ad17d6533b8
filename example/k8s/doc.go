// Package k8s holds rotor's example as Kubernetes manifests, for kustomize
// (kubectl apply -k), and the tests that keep them honest; there is nothing
// to import.
//
// The manifests: namespace.yaml; server.yaml, the Hello server Deployment
// (two or more pods, gRPC health probes, rotation and drain settings as
// container arguments, -peer-dns on the headless Service); services.yaml, a
// ClusterIP Service and a headless one over the same pods; client.yaml, the
// example client once per way in (a ClusterIP target, and
// dns:///hello-headless:50051 with round_robin); hpa.yaml, CPU autoscaling;
// pdb.yaml, one voluntary disruption at a time.
//
// The tests decode every manifest strictly into the k8s.io/api types (an
// unknown or duplicated field fails) and check what the API server cannot:
// the container ports are the ports the server listens on (read from its
// arguments and the flags its -h lists), the probes target declared ports,
// terminationGracePeriodSeconds covers -shutdown-delay plus -drain-timeout,
// Service selectors select the server's pods, the headless Service is
// headless, the HPA targets the Deployment, and the clients' targets name
// existing Services and ports. Negative tests break each rule in memory and
// show that the check catches it. Another test runs the example server with
// the Deployment's own arguments and environment and shows that it serves,
// turns NOT_SERVING on SIGTERM and exits within the grace period. The
// Dockerfile at the module root builds the images; a test checks it as text,
// and builds it only where a container daemon answers.
//
// monitoring/ holds the example's Prometheus scrape configuration, alerting
// rules and Grafana dashboard, with tests of their own, in a kustomization
// of their own that needs the prometheus-operator's CRDs; this directory's
// needs none.
//
// TestRealCluster applies the manifests as they are (kustomize, then
// server-side apply) to a real Kubernetes v1.37.2 control plane with
// kube-proxy in iptables and nftables mode and CoreDNS (internal/cluster,
// built by tools/kube-build.sh), whose two Nodes run the pods as processes
// (internal/cluster/nodeagent), with the manifests' own client Deployments
// scaled up through the API; it then does what an operator does (rollout
// restart, a crash, fair share on and a scale-up, a drain under the
// PodDisruptionBudget) and checks what the clients and the pods' metrics
// see. It needs root and skips without it.
//
// k8s.io/api and the cluster lab are imported by these test files only, so
// code that imports rotor never builds them.
package k8s
