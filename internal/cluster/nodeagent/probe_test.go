package nodeagent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// httpTarget serves status on every path and records the User-Agent.
func httpTarget(t *testing.T, status *atomic.Int32, agent *atomic.Value) int {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent.Store(r.UserAgent())
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return port
}

func TestProbeHandlers(t *testing.T) {
	var status atomic.Int32
	var agent atomic.Value
	httpPort := httpTarget(t, &status, &agent)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	grpcPort := ln.Addr().(*net.TCPAddr).Port
	closed := func() int { // a port nobody listens on
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()

	ctr := &corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(httpPort)}}}
	httpProbe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, TimeoutSeconds: 1}
	for _, tc := range []struct {
		name   string
		probe  *corev1.Probe
		setup  func()
		want   result
		reason string
	}{
		{"httpGet 200, named port", httpProbe, func() { status.Store(200) }, success, ""},
		{"httpGet 302", httpProbe, func() { status.Store(302) }, success, ""},
		{"httpGet 503", httpProbe, func() { status.Store(503) }, failure, "statuscode: 503"},
		{"tcpSocket open", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(grpcPort))}}}, nil, success, ""},
		{"tcpSocket closed", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(closed))}}}, nil, failure, "connection refused"},
		{"grpc SERVING", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(grpcPort)}}}, nil, success, ""},
		{"grpc NOT_SERVING", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(grpcPort)}}},
			func() { hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) }, failure, "service unhealthy"},
		{"grpc closed port", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(closed)}}}, nil, failure, "connection refused"},
		{"unknown named port", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}}, nil, failure, `couldn't find port "nope"`},
		{"exec", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}, nil, failure, "need a container runtime"},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		got, msg := probeOnce(context.Background(), tc.probe, ctr, loopback)
		if got != tc.want || !strings.Contains(msg, tc.reason) {
			t.Errorf("%s: %v %q; want %v and a reason with %q", tc.name, got, msg, tc.want, tc.reason)
		}
	}
	if ua, _ := agent.Load().(string); ua != probeUserAgent {
		t.Errorf("httpGet probes sent User-Agent %q, want %q", ua, probeUserAgent)
	}
}

// reportLog records what a probe worker reports.
type reportLog struct{ results []result }

// TestProbeWorkerThresholds drives a readiness and a liveness worker by
// hand, one probe at a time, against an HTTP target whose answer the test
// flips.
func TestProbeWorkerThresholds(t *testing.T) {
	var status atomic.Int32
	var agent atomic.Value
	port := httpTarget(t, &status, &agent)
	view := probeView{containerID: "rotorlab://1", running: true, started: true, startedAt: time.Now().Add(-time.Minute), podIP: loopback}
	newWorker := func(kind probeKind, log *reportLog) *probeWorker {
		return &probeWorker{
			kind: kind,
			spec: &corev1.Probe{
				ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(int32(port))}},
				FailureThreshold: 3, SuccessThreshold: 2, TimeoutSeconds: 1,
			},
			ctr:       &corev1.Container{},
			view:      func() probeView { return view },
			report:    func(_ probeKind, _ string, r result) { log.results = append(log.results, r) },
			unhealthy: func(probeKind, string) {},
		}
	}
	var readyLog reportLog
	ready := newWorker(readiness, &readyLog)
	// The first probe of a container reports the initial value (readiness:
	// failure); two successes in a row make it success.
	status.Store(200)
	for range 2 {
		if !ready.probe(context.Background()) {
			t.Fatal("the worker stopped")
		}
	}
	if want := []result{failure, success}; !equalResults(readyLog.results, want) {
		t.Fatalf("readiness after 2 successes: reported %v, want %v", readyLog.results, want)
	}
	// Two failures change nothing, the third does.
	status.Store(500)
	for range 3 {
		ready.probe(context.Background())
	}
	if want := []result{failure, success, failure}; !equalResults(readyLog.results, want) {
		t.Fatalf("readiness after 3 failures: reported %v, want %v", readyLog.results, want)
	}

	// Liveness: 3 failures condemn the container; the worker then holds
	// until a new container appears.
	var liveLog reportLog
	live := newWorker(liveness, &liveLog)
	for range 5 {
		live.probe(context.Background())
	}
	if want := []result{success, failure}; !equalResults(liveLog.results, want) {
		t.Fatalf("liveness after 5 failures: reported %v, want %v (held after the failure)", liveLog.results, want)
	}
	view.containerID = "rotorlab://2"
	status.Store(200)
	live.probe(context.Background())
	if want := []result{success, failure, success}; !equalResults(liveLog.results, want) {
		t.Fatalf("liveness of a new container: reported %v, want %v", liveLog.results, want)
	}

	// A pod being deleted: liveness stops with success, readiness goes on.
	view.deleting = true
	if live.probe(context.Background()) {
		t.Error("the liveness worker goes on probing a pod being deleted")
	}
	if !ready.probe(context.Background()) {
		t.Error("the readiness worker stopped probing a pod being deleted")
	}
	// Before initialDelaySeconds nothing is probed.
	view.deleting = false
	view.startedAt = time.Now()
	var delayedLog reportLog
	delayed := newWorker(readiness, &delayedLog)
	delayed.spec.InitialDelaySeconds = 60
	delayed.probe(context.Background())
	delayed.probe(context.Background())
	if want := []result{failure}; !equalResults(delayedLog.results, want) {
		t.Errorf("readiness within initialDelaySeconds: reported %v, want only the initial %v", delayedLog.results, want)
	}
}

func equalResults(a, b []result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
