package nodeagent

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// statusInput is what the agent knows of a pod, from which podStatus makes
// the status it reports. It is plain data, so that the rules can be tested
// alone.
type statusInput struct {
	pod          *corev1.Pod // the spec, and the status the API holds
	hostIP       netip.Addr
	podIP        netip.Addr // invalid until the sandbox is made
	startTime    metav1.Time
	sandboxReady bool
	terminal     bool // every container has stopped and will not run again
	containers   []corev1.ContainerStatus
	now          metav1.Time
}

// The condition reasons kubelet uses (pkg/kubelet/status/generate.go).
const (
	reasonContainersNotReady     = "ContainersNotReady"
	reasonPodCompleted           = "PodCompleted"
	reasonReadinessGatesNotReady = "ReadinessGatesNotReady"
)

// ownedConditions are the pod conditions the node's kubelet sets; the
// others (PodScheduled, DisruptionTarget, readiness gates) belong to
// someone else and are kept as the API holds them.
var ownedConditions = []corev1.PodConditionType{
	corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady,
}

// podStatus returns the status kubelet would report for in
// (pkg/kubelet/kubelet_pods.go: generateAPIPodStatus, getPhase;
// pkg/kubelet/status/generate.go), merged into the status the API holds:
// conditions the kubelet does not own are kept, a condition's
// lastTransitionTime changes only with its status, and a terminal phase is
// never left.
func podStatus(in statusInput) corev1.PodStatus {
	old := in.pod.Status
	s := corev1.PodStatus{
		Phase:              podPhase(in.pod.Spec, in.containers, in.terminal),
		ContainerStatuses:  in.containers,
		QOSClass:           old.QOSClass,
		ObservedGeneration: in.pod.Generation,
	}
	if old.Phase == corev1.PodFailed || old.Phase == corev1.PodSucceeded {
		s.Phase = old.Phase
	}
	if s.Phase == old.Phase {
		s.Reason, s.Message = old.Reason, old.Message
	}
	if in.hostIP.IsValid() {
		s.HostIP = in.hostIP.String()
		s.HostIPs = []corev1.HostIP{{IP: s.HostIP}}
	}
	if in.podIP.IsValid() {
		s.PodIP = in.podIP.String()
		s.PodIPs = []corev1.PodIP{{IP: s.PodIP}}
	}
	if !in.startTime.IsZero() {
		s.StartTime = &in.startTime
	}

	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		st := corev1.ConditionFalse
		if ok {
			st = corev1.ConditionTrue
			reason, msg = "", ""
		}
		c := corev1.PodCondition{Type: t, Status: st, Reason: reason, Message: msg, LastTransitionTime: in.now,
			ObservedGeneration: in.pod.Generation}
		if i := slices.IndexFunc(old.Conditions, func(o corev1.PodCondition) bool { return o.Type == t }); i >= 0 && old.Conditions[i].Status == st {
			c.LastTransitionTime = old.Conditions[i].LastTransitionTime
		}
		return c
	}

	var unready []string
	for _, c := range in.pod.Spec.Containers {
		i := slices.IndexFunc(in.containers, func(cs corev1.ContainerStatus) bool { return cs.Name == c.Name })
		if i < 0 || !in.containers[i].Ready {
			unready = append(unready, c.Name)
		}
	}
	terminalPhase := s.Phase == corev1.PodSucceeded || s.Phase == corev1.PodFailed
	containersReady := cond(corev1.ContainersReady, len(unready) == 0, reasonContainersNotReady,
		fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " ")))
	if terminalPhase {
		containersReady = cond(corev1.ContainersReady, false, reasonPodCompleted, "")
	}
	ready := containersReady
	ready.Type = corev1.PodReady
	ready = cond(corev1.PodReady, containersReady.Status == corev1.ConditionTrue, ready.Reason, ready.Message)
	if ready.Status == corev1.ConditionTrue {
		var gates []string
		for _, g := range in.pod.Spec.ReadinessGates {
			i := slices.IndexFunc(old.Conditions, func(c corev1.PodCondition) bool { return c.Type == g.ConditionType })
			if i < 0 {
				gates = append(gates, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
			} else if old.Conditions[i].Status != corev1.ConditionTrue {
				gates = append(gates, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, old.Conditions[i].Status))
			}
		}
		if len(gates) > 0 {
			ready = cond(corev1.PodReady, false, reasonReadinessGatesNotReady, strings.Join(gates, ", "))
		}
	}
	owned := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, in.sandboxReady, "", ""),
		cond(corev1.PodInitialized, true, "", ""),
		containersReady,
		ready,
	}
	for _, c := range old.Conditions {
		if !slices.Contains(ownedConditions, c.Type) {
			s.Conditions = append(s.Conditions, c)
		}
	}
	s.Conditions = append(s.Conditions, owned...)
	return s
}

// podPhase is kubelet's getPhase for a pod without init containers. A
// terminal pod (deleted, or done for good) is Succeeded when every
// container exited 0, else Failed, whatever its restart policy.
func podPhase(spec corev1.PodSpec, statuses []corev1.ContainerStatus, terminal bool) corev1.PodPhase {
	var unknown, running, waiting, stopped, succeeded int
	for _, c := range spec.Containers {
		i := slices.IndexFunc(statuses, func(cs corev1.ContainerStatus) bool { return cs.Name == c.Name })
		if i < 0 {
			unknown++
			continue
		}
		st := statuses[i]
		switch {
		case st.State.Running != nil:
			running++
		case st.State.Terminated != nil:
			stopped++
			if st.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case st.State.Waiting != nil:
			if st.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	switch {
	case terminal && running == 0 && unknown == 0 && waiting == 0:
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
		return corev1.PodFailed
	case terminal && running == 0:
		// Deleted before every container ran.
		return corev1.PodFailed
	case waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		switch {
		case spec.RestartPolicy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		}
		return corev1.PodRunning // OnFailure, restarting
	}
	return corev1.PodPending
}

// shouldRestart says whether a container that exited with code runs
// again under the pod's restart policy.
func shouldRestart(policy corev1.RestartPolicy, code int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return true
}
