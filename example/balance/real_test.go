package main

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/rotorkit/rotor/example/internal/realcluster"
	"github.com/rotorkit/rotor/internal/cluster"
	"github.com/rotorkit/rotor/internal/testkit"
)

var realBuild struct {
	once sync.Once
	dir  string
	bins realcluster.Binaries
	err  error
}

// realBinaries skips unless the host can run a real cluster, and builds
// the images' programs and the node agent once per test run.
func realBinaries(t *testing.T) binaries {
	t.Helper()
	if err := checkReal(cluster.ProxyIPTables); err != nil {
		t.Skip(err)
	}
	realBuild.once.Do(func() {
		realBuild.dir, realBuild.err = testkit.BuildDir("rotor-balance-real-")
		if realBuild.err == nil {
			realBuild.bins, realBuild.err = realcluster.Build(context.Background(), realBuild.dir, "")
		}
	})
	if realBuild.err != nil {
		t.Fatal(realBuild.err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := findManifests("")
	if err != nil {
		t.Fatal(err)
	}
	return binaries{server: realBuild.bins.Server, load: exe, real: realBuild.bins, manifests: manifests}
}

// TestRealClusterBackend runs the report's scenarios with -cluster real, in
// their short form: a Kubernetes control plane with kube-proxy in iptables
// mode and CoreDNS, example/k8s applied, the server Deployment changed
// through the API. A scale-up with fair share must put calls on every new
// pod and fail none; a rollout restart with headless clients (not in
// -short) must fail none and move the clients to the new pods. The run
// records where it ran, and leaves no namespace, directory or process.
func TestRealClusterBackend(t *testing.T) {
	bins := realBinaries(t)
	p := defaultParams(true)
	p.Cluster, p.ProxyMode = clusterReal, cluster.ProxyIPTables

	t.Run("seed-clusterip/fair-share", func(t *testing.T) {
		sc, _ := findScenario("seed-clusterip")
		m, _ := findMode("fair-share")
		r := runShortIn(t, sc, m, p, bins)
		if r.Cluster != clusterReal || r.ProxyMode != string(cluster.ProxyIPTables) || r.Components["kube-proxy"] != cluster.KubernetesVersion {
			t.Errorf("run records cluster %q, proxy mode %q, components %v; want real, iptables and the pinned versions", r.Cluster, r.ProxyMode, r.Components)
		}
		if !slices.Contains(r.ServerArgs, "-fair-share") || slices.Contains(r.ServerArgs, "-max-connection-age=30s") {
			t.Errorf("server args %q: want the manifests' with fair share in place of their 30 s age", r.ServerArgs)
		}
		if got := len(newPods(r)); got != 3 {
			t.Fatalf("%d new pods, want 3 (2 → 5): %+v", got, r.Pods)
		}
		for _, name := range newPods(r) {
			if r.Summary.PerPod[name] == 0 {
				t.Errorf("new pod %s got no calls with fair share (per pod: %v)", name, r.Summary.PerPod)
			}
		}
		if r.Summary.Failed != 0 {
			t.Errorf("%d calls failed, want 0: %v", r.Summary.Failed, r.Summary.FailedByCode)
		}
	})
	if testing.Short() {
		return
	}
	t.Run("rollout-headless/default", func(t *testing.T) {
		sc, _ := findScenario("rollout-headless")
		m, _ := findMode("default")
		r := runShortIn(t, sc, m, p, bins)
		if len(r.Events) != 1 || r.Events[0].Label != "rollout restart" {
			t.Fatalf("events %+v, want one rollout restart", r.Events)
		}
		if got := newPods(r); len(got) != 1 || !slices.Equal(r.FinalPods, got) {
			t.Fatalf("pods %+v, final %v: want the pod replaced by one new pod, the old one gone", r.Pods, r.FinalPods)
		}
		if r.Summary.NewPodCalls == 0 {
			t.Fatal("the new pod got no calls: the clients never moved")
		}
		if r.Summary.Failed != 0 {
			t.Errorf("%d of %d calls failed through the rollout, want 0: %v", r.Summary.Failed, r.Summary.Calls+r.Summary.Failed, r.Summary.FailedByCode)
		}
	})
}

// TestRealServerArgs: a mode's flags replace the manifests' rotation flags;
// default keeps them; the ports and shutdown timings always stay.
func TestRealServerArgs(t *testing.T) {
	l := &realLab{manifest: []string{"-grpc-addr=:50051", "-admin-addr=:9090", "-admin-public", "-max-connection-age=30s",
		"-shutdown-delay=5s", "-drain-timeout=45s", "-rotate-spread=5s", "-peer-dns=hello-headless", "-peer-interval=5s"}}
	p := defaultParams(false)
	sc, _ := findScenario("seed-clusterip")
	for _, tc := range []struct {
		mode       string
		want, gone []string
	}{
		{"default", []string{"-max-connection-age=30s", "-peer-dns=hello-headless", "-peer-interval=5s", "-log-calls=false"}, nil},
		{"none", []string{"-max-connection-age=off"}, []string{"-max-connection-age=30s", "-peer-dns=hello-headless", "-rotate-spread=5s"}},
		{"age", []string{"-max-connection-age=10s"}, []string{"-peer-dns=hello-headless", "-peer-interval=5s"}},
		{"fair-share", []string{"-max-connection-age=5m0s", "-peer-dns=hello-headless", "-peer-interval=1s", "-rotate-spread=2s", "-fair-share"},
			[]string{"-max-connection-age=30s", "-peer-interval=5s", "-rotate-spread=5s"}},
	} {
		m, _ := findMode(tc.mode)
		got := l.serverArgs(sc, m, p)
		for _, a := range append(tc.want, "-grpc-addr=:50051", "-admin-public", "-shutdown-delay=5s", "-drain-timeout=45s") {
			if !slices.Contains(got, a) {
				t.Errorf("%s: %q lacks %s", tc.mode, got, a)
			}
		}
		for _, a := range tc.gone {
			if slices.Contains(got, a) {
				t.Errorf("%s: %q keeps %s", tc.mode, got, a)
			}
		}
	}
	p.ServerLogLevel = "debug"
	m, _ := findMode("fair-share")
	if got := l.serverArgs(sc, m, p); !slices.Contains(got, "-log-level=debug") {
		t.Errorf("-server-log-level debug: %q lacks -log-level=debug", got)
	}
}
