package nodeagent

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func running() corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func exited(code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

func backingOff(code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonCrashLoopBackOff}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

func creating() corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}}}
}

// The phase rules of kubelet's getPhase for one container.
func TestPodPhase(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   corev1.RestartPolicy
		status   []corev1.ContainerStatus
		terminal bool
		want     corev1.PodPhase
	}{
		{"no status yet", corev1.RestartPolicyAlways, nil, false, corev1.PodPending},
		{"creating", corev1.RestartPolicyAlways, []corev1.ContainerStatus{creating()}, false, corev1.PodPending},
		{"running", corev1.RestartPolicyAlways, []corev1.ContainerStatus{running()}, false, corev1.PodRunning},
		{"crash-looping stays Running", corev1.RestartPolicyAlways, []corev1.ContainerStatus{backingOff(1)}, false, corev1.PodRunning},
		{"Always, exited 0, not yet restarted", corev1.RestartPolicyAlways, []corev1.ContainerStatus{exited(0)}, false, corev1.PodRunning},
		{"OnFailure, exited 0", corev1.RestartPolicyOnFailure, []corev1.ContainerStatus{exited(0)}, false, corev1.PodSucceeded},
		{"OnFailure, exited 1, restarting", corev1.RestartPolicyOnFailure, []corev1.ContainerStatus{backingOff(1)}, false, corev1.PodRunning},
		{"Never, exited 1", corev1.RestartPolicyNever, []corev1.ContainerStatus{exited(1)}, false, corev1.PodFailed},
		{"Never, exited 0", corev1.RestartPolicyNever, []corev1.ContainerStatus{exited(0)}, false, corev1.PodSucceeded},
		{"deleted, exited 0 on SIGTERM", corev1.RestartPolicyAlways, []corev1.ContainerStatus{exited(0)}, true, corev1.PodSucceeded},
		{"deleted, killed", corev1.RestartPolicyAlways, []corev1.ContainerStatus{exited(137)}, true, corev1.PodFailed},
		{"deleted before it started", corev1.RestartPolicyAlways, []corev1.ContainerStatus{creating()}, true, corev1.PodFailed},
	} {
		spec := corev1.PodSpec{RestartPolicy: tc.policy, Containers: []corev1.Container{{Name: "c"}}}
		if got := podPhase(spec, tc.status, tc.terminal); got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}

func condition(s corev1.PodStatus, ct corev1.PodConditionType) *corev1.PodCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == ct {
			return &s.Conditions[i]
		}
	}
	return nil
}

func TestPodStatusConditions(t *testing.T) {
	earlier := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(earlier.Add(time.Hour))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}, RestartPolicy: corev1.RestartPolicyAlways},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: earlier},
			{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI", LastTransitionTime: earlier},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: earlier},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: earlier},
		}},
	}
	ready := running()
	ready.Ready = true
	in := statusInput{
		pod: pod, hostIP: netip.MustParseAddr("10.0.0.1"), podIP: netip.MustParseAddr("10.0.0.7"),
		startTime: earlier, sandboxReady: true, containers: []corev1.ContainerStatus{ready}, now: now,
	}
	s := podStatus(in)
	if s.Phase != corev1.PodRunning || s.PodIP != "10.0.0.7" || len(s.PodIPs) != 1 || s.HostIP != "10.0.0.1" || s.ObservedGeneration != 3 {
		t.Errorf("status %+v", s)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.DisruptionTarget} {
		if c := condition(s, ct); c == nil || c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&earlier) {
			t.Errorf("%s: %+v; want the API's condition kept as it was", ct, c)
		}
	}
	if c := condition(s, corev1.PodReady); c == nil || c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&now) {
		t.Errorf("Ready: %+v; want True since now", c)
	}
	if c := condition(s, corev1.PodInitialized); c == nil || !c.LastTransitionTime.Equal(&earlier) {
		t.Errorf("Initialized: %+v; want its transition time unchanged", c)
	}

	// Readiness lost, and a readiness gate.
	in.containers = []corev1.ContainerStatus{running()}
	s = podStatus(in)
	if c := condition(s, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != reasonContainersNotReady || c.Message != "containers with unready status: [c]" {
		t.Errorf("Ready: %+v", c)
	}
	in.containers = []corev1.ContainerStatus{ready}
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	s = podStatus(in)
	if c := condition(s, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != reasonReadinessGatesNotReady {
		t.Errorf("Ready with an unmet readiness gate: %+v", c)
	}
	if c := condition(s, corev1.ContainersReady); c.Status != corev1.ConditionTrue {
		t.Errorf("ContainersReady with an unmet readiness gate: %+v; want True", c)
	}

	// Terminal: a terminal phase is kept, Ready says PodCompleted.
	pod.Spec.ReadinessGates = nil
	in.terminal = true
	in.containers = []corev1.ContainerStatus{exited(0)}
	s = podStatus(in)
	if c := condition(s, corev1.PodReady); s.Phase != corev1.PodSucceeded || c.Status != corev1.ConditionFalse || c.Reason != reasonPodCompleted {
		t.Errorf("terminal: phase %s, Ready %+v", s.Phase, c)
	}
	pod.Status.Phase = corev1.PodFailed
	if s := podStatus(in); s.Phase != corev1.PodFailed {
		t.Errorf("a pod the API holds as Failed reported %s; a terminal phase is never left", s.Phase)
	}
}

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		code   int32
		want   bool
	}{
		{corev1.RestartPolicyAlways, 0, true}, {corev1.RestartPolicyAlways, 1, true},
		{corev1.RestartPolicyOnFailure, 0, false}, {corev1.RestartPolicyOnFailure, 137, true},
		{corev1.RestartPolicyNever, 1, false},
	} {
		if got := shouldRestart(tc.policy, tc.code); got != tc.want {
			t.Errorf("shouldRestart(%s, %d) = %v", tc.policy, tc.code, got)
		}
	}
}
