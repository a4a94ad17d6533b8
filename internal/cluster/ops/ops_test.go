package ops

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestRolloutComplete(t *testing.T) {
	d := func(gen, observed int64, want, replicas, updated, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: &want},
			Status:     appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated, AvailableReplicas: available},
		}
	}
	for _, tc := range []struct {
		d    *appsv1.Deployment
		done bool
		why  string
	}{
		{d(2, 1, 2, 2, 2, 2), false, "spec update to be observed"},
		{d(2, 2, 2, 3, 1, 2), false, "1 out of 2 new replicas"},
		{d(2, 2, 2, 3, 2, 2), false, "1 old replicas are pending termination"},
		{d(2, 2, 2, 2, 2, 1), false, "1 of 2 updated replicas are available"},
		{d(2, 2, 2, 2, 2, 2), true, ""},
	} {
		done, why := RolloutComplete(tc.d)
		if done != tc.done || !strings.Contains(why, tc.why) {
			t.Errorf("%+v: %v %q, want %v %q", tc.d.Status, done, why, tc.done, tc.why)
		}
	}
}

func deployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "server", Env: []corev1.EnvVar{{Name: "KEEP", Value: "1"}}},
			}}},
		},
	}
}

func TestRolloutRestart(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(deployment())
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if err := RolloutRestart(ctx, c, "ns", "web", now); err != nil {
		t.Fatal(err)
	}
	d, err := c.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Annotations[RestartedAtAnnotation]; got != "2026-11-30T12:00:00Z" {
		t.Errorf("%s = %q", RestartedAtAnnotation, got)
	}
}

func TestSetFlags(t *testing.T) {
	ctx := context.Background()
	d := deployment()
	d.Spec.Template.Spec.Containers[0].Args = []string{"-grpc-addr=:50051", "--max-connection-age=30s", "-v"}
	c := fake.NewClientset(d)
	if err := SetFlags(ctx, c, "ns", "web", "server", map[string]string{"max-connection-age": "5m", "fair-share": ""}); err != nil {
		t.Fatal(err)
	}
	got, err := c.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-grpc-addr=:50051", "-max-connection-age=5m", "-v", "-fair-share"}
	if args := got.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, want) {
		t.Errorf("args %q, want %q", args, want)
	}
	if err := SetFlags(ctx, c, "ns", "web", "sidecar", map[string]string{"x": "1"}); err == nil || !strings.Contains(err.Error(), `no container "sidecar"`) {
		t.Errorf("unknown container: %v", err)
	}
}

// TestDrain drains a node of two pods with a fake API whose eviction of
// one pod is refused once (as a PodDisruptionBudget would) and that
// deletes a pod when its eviction is accepted.
func TestDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer func(d time.Duration) { evictionRetry = d }(evictionRetry)
	evictionRetry = 10 * time.Millisecond
	pod := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)}, Spec: corev1.PodSpec{NodeName: node}}
	}
	ds := pod("ds", "node-1")
	ds.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "x", Controller: new(true)}}
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, pod("a", "node-1"), pod("b", "node-1"), ds, pod("elsewhere", "node-2"))
	refusals := map[string]int{"b": 1}
	var evicted []string
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		e := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if refusals[e.Name] > 0 {
			refusals[e.Name]--
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		evicted = append(evicted, e.Name)
		err := c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "ns", e.Name)
		return true, nil, err
	})
	out, err := Drain(ctx, c, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("drain evicted %+v; want a and b only (not the DaemonSet's pod, nor another node's)", out)
	}
	for _, e := range out {
		want := map[string]int{"a": 0, "b": 1}[e.Name]
		if e.Refused != want || e.Gone.IsZero() || e.Gone.Before(e.Evicted) {
			t.Errorf("%s: %+v; want %d refusals and the pod gone after its eviction", e.Name, e, want)
		}
	}
	n, err := c.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil || !n.Spec.Unschedulable {
		t.Errorf("node-1 after the drain: %+v, %v; want it cordoned", n.Spec, err)
	}
}
