package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rotorkit/rotor/internal/cluster/nodeagent"
	"github.com/rotorkit/rotor/internal/netns"
)

// serveHelper is the program of the node agent test's pods: gRPC health
// on :50051, and on :8080 /healthz (500 once /fail was asked), /env (its
// environment), /whoami (uid, gid, groups) and /resolv (its
// /etc/resolv.conf). On SIGTERM it turns NOT_SERVING and prints "SIGTERM
// <unix ms>"; it exits 0 then, unless HELPER_IGNORE_TERM is set. With
// HELPER_EXIT=N it exits with N at once.
func serveHelper() {
	if code := os.Getenv("HELPER_EXIT"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Println("exiting with", n)
		os.Exit(n)
	}
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", ":50051")
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	go func() { _ = gs.Serve(ln) }()
	var failing atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("POST /fail", func(http.ResponseWriter, *http.Request) { failing.Store(true) })
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(os.Environ()) })
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, _ *http.Request) {
		groups, _ := os.Getgroups()
		_ = json.NewEncoder(w).Encode(map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "groups": groups})
	})
	mux.HandleFunc("GET /resolv", func(w http.ResponseWriter, _ *http.Request) {
		b, _ := os.ReadFile("/etc/resolv.conf")
		_, _ = w.Write(b)
	})
	go func() { _ = http.ListenAndServe(":8080", mux) }()
	fmt.Println("serving")
	<-terms
	fmt.Println("SIGTERM", time.Now().UnixMilli())
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if os.Getenv("HELPER_IGNORE_TERM") != "" {
		select {}
	}
	os.Exit(0)
}

// TestNodeAgent runs pods of the test binary (serveHelper) through the
// node agent and checks, through the API and in the pods, what a kubelet
// does: the pod's address from the Node's podCIDR, its resolv.conf, its
// environment (downward API, Secret, $(VAR)), its user, readiness through
// a gRPC probe, a restart on a failed liveness probe, an unknown image,
// a Secret created after the pod that needs it, a pod that runs to
// completion, and a deletion (preStop sleep, SIGTERM, SIGKILL at the grace
// period's end, the final delete).
func TestNodeAgent(t *testing.T) {
	cfg := Config{NodeAgent: true}
	if err := Available(cfg); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "node-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "./cmd/node-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/node-agent: %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := NewForTest(ctx, t, cfg)
	err = c.StartNodeAgents(ctx, AgentOptions{
		Binary:         agentBin,
		Images:         map[string]nodeagent.Image{"rotor-test-helper": {Binary: self, Entrypoint: "/helper"}},
		RestartBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	client := c.Client()
	const ns = "default"
	if _, err := client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "admin"}, Data: map[string][]byte{"token": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	httpc := &http.Client{Transport: &http.Transport{DialContext: netns.Dialer(c.NodeNetns())}, Timeout: 5 * time.Second}
	get := func(pod *corev1.Pod, path string, into any) {
		t.Helper()
		resp, err := httpc.Get("http://" + net.JoinHostPort(pod.Status.PodIP, "8080") + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if s, ok := into.(*string); ok {
			*s = string(b)
		} else if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: %q: %v", path, b, err)
		}
	}

	uid := int64(1234)
	web := helperPod("web", corev1.RestartPolicyAlways)
	web.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &uid, RunAsNonRoot: new(true)}
	ctr := &web.Spec.Containers[0]
	ctr.Env = append(ctr.Env,
		corev1.EnvVar{Name: "HELPER_IGNORE_TERM", Value: "1"},
		corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "token"}}},
		corev1.EnvVar{Name: "ADDR", Value: "$(POD_IP):50051"},
	)
	ctr.Ports = []corev1.ContainerPort{{Name: "grpc", ContainerPort: 50051}, {Name: "http", ContainerPort: 8080}}
	ctr.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 50051}}, PeriodSeconds: 1, FailureThreshold: 1}
	ctr.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
		PeriodSeconds: 1, FailureThreshold: 2}
	ctr.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	web.Spec.TerminationGracePeriodSeconds = new(int64(3))

	// Pods need their ServiceAccount, which the controller manager makes
	// once it runs.
	sas, err := client.CoreV1().ServiceAccounts(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=default"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		select {
		case <-sas.ResultChan():
		case <-ctx.Done():
			t.Fatal("no default ServiceAccount")
		}
	}
	sas.Stop()

	pods := client.CoreV1().Pods(ns)
	w, err := pods.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// A Secret the pod needs that does not exist yet: its container waits
	// in CreateContainerConfigError until it does (the example's README
	// says so of hello-admin).
	late := helperPod("late-secret", corev1.RestartPolicyAlways)
	late.Spec.Containers[0].Env = append(late.Spec.Containers[0].Env, corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "late"}, Key: "token"}}})
	for _, p := range []*corev1.Pod{web, helperPod("bad-image", corev1.RestartPolicyAlways), exitingPod(), late} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	latest := map[string]*corev1.Pod{}
	waitFor := func(what string, cond func(map[string]*corev1.Pod) bool) {
		t.Helper()
		for !cond(latest) {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %v; pods: %s", what, context.Cause(ctx), describe(latest))
			case ev := <-w.ResultChan():
				if p, ok := ev.Object.(*corev1.Pod); ok {
					if ev.Type == watch.Deleted {
						delete(latest, p.Name)
					} else {
						latest[p.Name] = p
					}
				}
			}
		}
	}

	waitFor("web Ready, bad-image in ErrImagePull, done Succeeded, late-secret in CreateContainerConfigError", func(m map[string]*corev1.Pod) bool {
		return m["web"] != nil && isReady(m["web"]) &&
			m["bad-image"] != nil && waitingReason(m["bad-image"]) == "ErrImagePull" &&
			m["done"] != nil && m["done"].Status.Phase == corev1.PodSucceeded &&
			m["late-secret"] != nil && waitingReason(m["late-secret"]) == "CreateContainerConfigError"
	})
	if msg := waitingMessage(latest["late-secret"]); !strings.Contains(msg, `secret "late"`) {
		t.Errorf("late-secret's waiting message %q does not name the Secret", msg)
	}
	if _, err := client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "late"}, Data: map[string][]byte{"token": []byte("t")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	t.Logf("web Ready %v after its creation", time.Since(start).Round(10*time.Millisecond))
	pod := latest["web"]
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil || !NodePodCIDR.Contains(ip) || pod.Status.HostIP != NodeIP.String() {
		t.Errorf("web: podIP %q hostIP %q; want an address of %v on host %v", pod.Status.PodIP, pod.Status.HostIP, NodePodCIDR, NodeIP)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		if !hasCondition(pod, ct, corev1.ConditionTrue) {
			t.Errorf("web: condition %s is not True: %+v", ct, pod.Status.Conditions)
		}
	}
	cs := pod.Status.ContainerStatuses[0]
	if _, ok := nodeagent.ContainerPID(cs.ContainerID); !ok || cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started {
		t.Errorf("web: container status %+v", cs)
	}
	var env []string
	get(pod, "/env", &env)
	for _, want := range []string{"POD_NAME=web", "POD_IP=" + pod.Status.PodIP, "TOKEN=s3cret", "ADDR=" + pod.Status.PodIP + ":50051", "HOSTNAME=web"} {
		if !contains(env, want) {
			t.Errorf("web's environment lacks %s: %v", want, env)
		}
	}
	if contains(env, helperEnv+"=serve") == false || len(env) > 12 {
		t.Errorf("web's environment is not the pod's own (the agent's leaked in?): %v", env)
	}
	var who struct {
		UID, GID int
		Groups   []int
	}
	get(pod, "/whoami", &who)
	if who.UID != 1234 || who.GID != 1234 || len(who.Groups) > 1 {
		t.Errorf("web runs as %+v, want uid and gid 1234 and no other group", who)
	}
	var resolv string
	get(pod, "/resolv", &resolv)
	if !strings.Contains(resolv, "nameserver "+DNSServiceIP.String()) || !strings.Contains(resolv, "search default.svc.cluster.local") {
		t.Errorf("web's /etc/resolv.conf:\n%s\nwant the cluster DNS and the namespace's search list", resolv)
	}
	if msg := waitingMessage(latest["bad-image"]); !strings.Contains(msg, `"rotor.invalid/nope:1"`) {
		t.Errorf("bad-image's waiting message %q does not name the image", msg)
	}
	if p := latest["bad-image"]; p.Status.Phase != corev1.PodPending || isReady(p) {
		t.Errorf("bad-image: phase %s, want Pending", p.Status.Phase)
	}
	if cs := latest["done"].Status.ContainerStatuses[0]; cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.RestartCount != 0 {
		t.Errorf("done: container status %+v; want terminated with code 0, never restarted", cs)
	}
	waitFor("late-secret running once its Secret exists", func(m map[string]*corev1.Pod) bool {
		p := m["late-secret"]
		return p != nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	t.Logf("late-secret running %v after its Secret was created (kubelet tries again every 10 s)", time.Since(created).Round(10*time.Millisecond))

	// A failed liveness probe restarts the container (restartPolicy
	// Always); the pod leaves Ready and comes back.
	resp, err := httpc.Post("http://"+net.JoinHostPort(pod.Status.PodIP, "8080")+"/fail", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	failed := time.Now()
	waitFor("web restarted after its liveness probe failed, and Ready", func(m map[string]*corev1.Pod) bool {
		p := m["web"]
		return p != nil && isReady(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	cs = latest["web"].Status.ContainerStatuses[0]
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 137 {
		// The helper ignores SIGTERM: the kill ends with SIGKILL.
		t.Errorf("web's last state %+v; want terminated by SIGKILL (137) after the grace period", cs.LastTerminationState)
	}
	t.Logf("web restarted and Ready %v after its liveness endpoint failed", time.Since(failed).Round(10*time.Millisecond))

	// Deletion: preStop (sleep 1 s), SIGTERM (ignored), SIGKILL at the end
	// of the 3 s grace period, the final delete.
	pod = latest["web"]
	pid, _ := nodeagent.ContainerPID(pod.Status.ContainerStatuses[0].ContainerID)
	podNetns := ""
	if names, err := netns.List(); err == nil {
		for _, n := range names {
			if strings.HasPrefix(n, c.Prefix()+"-pod-"+c.NodeName()+"-web-") {
				podNetns = n
			}
		}
	}
	if podNetns == "" {
		t.Fatalf("no namespace %s-pod-%s-web-… for the web pod", c.Prefix(), c.NodeName())
	}
	deleted := time.Now()
	if err := pods.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("web gone", func(m map[string]*corev1.Pod) bool { return m["web"] == nil })
	gone := time.Since(deleted)
	if gone < 3*time.Second || gone > 8*time.Second {
		t.Errorf("web left the API %v after its deletion; want just after its 3 s grace period", gone)
	}
	logs, _ := filepath.Glob(filepath.Join(c.PodLogDir(), "default_web_*", "helper", "1.log"))
	if len(logs) != 1 {
		t.Fatalf("web's second run's log: found %v", logs)
	}
	out, _ := os.ReadFile(logs[0])
	var termAt int64
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "SIGTERM "); ok {
			termAt, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if sigterm := time.UnixMilli(termAt).Sub(deleted); termAt == 0 || sigterm < 900*time.Millisecond || sigterm > 2500*time.Millisecond {
		t.Errorf("SIGTERM came %v after the deletion (log %q); want after the 1 s preStop sleep", sigterm, out)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("web's process %d still runs after its pod is gone", pid)
	}
	if netns.Exists(podNetns) {
		t.Errorf("web's namespace %s is still there after its pod is gone", podNetns)
	}
	t.Logf("web gone from the API %v after its deletion", gone.Round(10*time.Millisecond))

	// A deleted pod that has run to completion is deleted at once.
	if err := pods.Delete(ctx, "done", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("done gone", func(m map[string]*corev1.Pod) bool { return m["done"] == nil })
	if _, err := pods.Get(ctx, "done", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("done after its deletion: %v", err)
	}
}

func helperPod(name string, policy corev1.RestartPolicy) *corev1.Pod {
	image := "rotor-test-helper:1"
	if name == "bad-image" {
		image = "rotor.invalid/nope:1"
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 policy,
			TerminationGracePeriodSeconds: new(int64(5)),
			Containers: []corev1.Container{{
				Name:  "helper",
				Image: image,
				Env:   []corev1.EnvVar{{Name: helperEnv, Value: "serve"}},
			}},
		},
	}
}

func exitingPod() *corev1.Pod {
	p := helperPod("done", corev1.RestartPolicyNever)
	p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "HELPER_EXIT", Value: "0"})
	return p
}

func isReady(p *corev1.Pod) bool { return hasCondition(p, corev1.PodReady, corev1.ConditionTrue) }

func hasCondition(p *corev1.Pod, ct corev1.PodConditionType, s corev1.ConditionStatus) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == ct {
			return c.Status == s
		}
	}
	return false
}

func waitingReason(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil {
		return p.Status.ContainerStatuses[0].State.Waiting.Reason
	}
	return ""
}

func waitingMessage(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil {
		return p.Status.ContainerStatuses[0].State.Waiting.Message
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func describe(pods map[string]*corev1.Pod) string {
	var b strings.Builder
	for name, p := range pods {
		fmt.Fprintf(&b, "\n%s: phase %s ready %v", name, p.Status.Phase, isReady(p))
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, " %s restarts %d state %+v last %+v", cs.Name, cs.RestartCount, cs.State, cs.LastTerminationState)
		}
	}
	return b.String()
}
