package k8s

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotorkit/rotor/internal/testkit"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestServerRunsWithManifestArgs runs the example server with the server
// Deployment's own arguments and environment (listen addresses moved to
// loopback ports, the peer watcher pointed at a loopback address, the
// downward API and the Secret filled in): it must start,
// answer the gRPC health check the probes make with SERVING, turn
// NOT_SERVING as soon as it gets SIGTERM (so readiness fails and the pod
// leaves the endpoints), and exit within the pod's
// terminationGracePeriodSeconds.
func TestServerRunsWithManifestArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the shutdown takes the manifest's -shutdown-delay")
	}
	b, err := decode(readManifests(t))
	if err != nil {
		t.Fatal(err)
	}
	d := b.deployment("hello-server")
	if d == nil {
		t.Fatal("no Deployment hello-server")
	}
	ct := d.Spec.Template.Spec.Containers[0]
	addrs := map[string]string{}
	var args []string
	for _, a := range ct.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "grpc-addr", "http-addr", "admin-addr":
			addrs[name] = testkit.FreeAddr(t)
			a = "-" + name + "=" + addrs[name]
		case "peer-dns":
			// Ask a loopback address where no DNS server listens, so that the
			// peer watcher's lookups stay on this machine (and fail).
			_, v, _ := strings.Cut(a, "=")
			a = "-peer-dns=dns://" + testkit.FreeAddr(t) + "/" + v
		}
		args = append(args, a)
	}
	env := os.Environ()
	for _, e := range ct.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"=hello-server-test")
		case e.ValueFrom.SecretKeyRef != nil:
			env = append(env, e.Name+"=test-secret")
		default:
			t.Fatalf("env %s: a source this test cannot fill: %+v", e.Name, e.ValueFrom)
		}
	}
	cmd := exec.Command(serverBinary, args...)
	cmd.Env = env
	p := testkit.Start(t, "server with the manifest's arguments "+strings.Join(args, " "), cmd)

	// Ready once the admin endpoint answers; POST /rotate wants the token.
	p.WaitHTTP(t, "http://"+addrs["admin-addr"]+"/stats", 15*time.Second)
	resp, err := http.Post("http://"+addrs["admin-addr"]+"/rotate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /rotate without the token: %d, want 401", resp.StatusCode)
	}

	cc, err := grpc.NewClient(addrs["grpc-addr"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	health := healthpb.NewHealthClient(cc)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{}) // what a grpc: probe with no service asks
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return r.GetStatus()
	}
	if s := check(); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check = %v, want SERVING", s)
	}

	begin := time.Now()
	p.Signal(t, syscall.SIGTERM)
	for s := check(); s == healthpb.HealthCheckResponse_SERVING; s = check() {
		if time.Since(begin) > 2*time.Second {
			t.Fatal("still SERVING 2 s after SIGTERM: readiness would keep the pod in the endpoints")
		}
		time.Sleep(20 * time.Millisecond)
	}
	grace := time.Duration(ptrValue(d.Spec.Template.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
		t.Logf("NOT_SERVING at once, exited %v after SIGTERM; terminationGracePeriodSeconds is %v", time.Since(begin).Round(time.Millisecond), grace)
	case <-time.After(grace):
		t.Fatalf("still running %v after SIGTERM: the kubelet would have killed it", grace)
	}
}
