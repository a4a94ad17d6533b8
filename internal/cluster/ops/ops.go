// Package ops does what an operator does to a cluster with kubectl, through
// the API with client-go, for the cluster lab's tests and reports: scale a
// Deployment, restart its rollout, set its container's flags, wait for its
// rollout, cordon a Node and drain it through the Eviction API under the
// PodDisruptionBudgets. Each function says which kubectl command it stands
// for and makes the same API calls (k8s.io/kubectl v0.37.2,
// pkg/cmd/{scale,rollout,set,drain}).
package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Scale sets a Deployment's replicas through its scale subresource, as
// "kubectl scale deployment/NAME --replicas=N" does.
func Scale(ctx context.Context, c kubernetes.Interface, namespace, name string, replicas int32) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"replicas": replicas}})
	if err != nil {
		return err
	}
	if _, err := c.AppsV1().Deployments(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "scale"); err != nil {
		return fmt.Errorf("ops: scale deployment/%s to %d: %w", name, replicas, err)
	}
	return nil
}

// RestartedAtAnnotation is the pod template annotation that "kubectl
// rollout restart" sets.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// RolloutRestart restarts a Deployment's pods as "kubectl rollout restart
// deployment/NAME" does: a strategic merge patch that sets the pod
// template's kubectl.kubernetes.io/restartedAt annotation to now (RFC
// 3339), which the Deployment controller rolls out by its strategy.
func RolloutRestart(ctx context.Context, c kubernetes.Interface, namespace, name string, now time.Time) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{RestartedAtAnnotation: now.Format(time.RFC3339)}},
	}}})
	if err != nil {
		return err
	}
	if _, err := c.AppsV1().Deployments(namespace).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("ops: rollout restart deployment/%s: %w", name, err)
	}
	return nil
}

// SetFlags sets command-line flags of one container of a Deployment, as an
// operator does with "kubectl edit deployment/NAME" (kubectl has no
// command for args): each flag in flags replaces the container's
// "-name=value" or "--name=value" argument, or is appended as "-name=value"
// when the container has none; a flag whose value is "" is set without one
// ("-name"). It reads, changes and updates the Deployment, again on a
// conflict, which rolls it out.
func SetFlags(ctx context.Context, c kubernetes.Interface, namespace, name, container string, flags map[string]string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == container })
		if i < 0 {
			return fmt.Errorf("no container %q", container)
		}
		ctr := &d.Spec.Template.Spec.Containers[i]
		for _, k := range slices.Sorted(maps.Keys(flags)) {
			arg := "-" + k
			if flags[k] != "" {
				arg += "=" + flags[k]
			}
			j := slices.IndexFunc(ctr.Args, func(a string) bool {
				a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
				n, _, _ := strings.Cut(a, "=")
				return n == k
			})
			if j >= 0 {
				ctr.Args[j] = arg
			} else {
				ctr.Args = append(ctr.Args, arg)
			}
		}
		_, err = c.AppsV1().Deployments(namespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("ops: set flags of deployment/%s container %s: %w", name, container, err)
	}
	return nil
}

// RolloutComplete reports whether a Deployment's rollout has finished, by
// the test of "kubectl rollout status": the controller has seen the latest
// spec, every replica is updated and available, and no old replica is
// left. If not, the string says what it waits for.
func RolloutComplete(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case d.Generation > st.ObservedGeneration:
		return false, "waiting for the deployment spec update to be observed"
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d out of %d new replicas have been updated", st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("%d old replicas are pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return false, fmt.Sprintf("%d of %d updated replicas are available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return true, ""
}

// WaitRollout watches a Deployment until its rollout is complete (see
// RolloutComplete), as "kubectl rollout status deployment/NAME" does, or
// ctx ends; the error then says what it was waiting for.
func WaitRollout(ctx context.Context, c kubernetes.Interface, namespace, name string) error {
	deployments := c.AppsV1().Deployments(namespace)
	last := "no status yet"
	for {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("ops: rollout status deployment/%s: %w (last: %s)", name, err, last)
		}
		var done bool
		if done, last = RolloutComplete(d); done {
			return nil
		}
		w, err := deployments.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: d.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("ops: rollout status deployment/%s: %w (last: %s)", name, err, last)
		}
		done, last, err = watchUntil(ctx, w, func(ev watch.Event) (bool, string) {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				return false, last
			}
			return RolloutComplete(d)
		})
		w.Stop()
		if done {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ops: rollout status deployment/%s: %w (last: %s)", name, err, last)
		}
		// The watch ended (a timeout of the server's): look again.
	}
}

// watchUntil reads events until cond holds, the watch ends (false, nil)
// or ctx ends (its error).
func watchUntil(ctx context.Context, w watch.Interface, cond func(watch.Event) (bool, string)) (bool, string, error) {
	last := ""
	for {
		select {
		case <-ctx.Done():
			return false, last, context.Cause(ctx)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, last, nil
			}
			if ev.Type == watch.Error {
				return false, last, nil
			}
			var done bool
			if done, last = cond(ev); done {
				return true, last, nil
			}
		}
	}
}

// Cordon marks a Node unschedulable, or schedulable again, as "kubectl
// cordon" and "kubectl uncordon" do (a patch of spec.unschedulable).
func Cordon(ctx context.Context, c kubernetes.Interface, node string, unschedulable bool) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"unschedulable": unschedulable}})
	if err != nil {
		return err
	}
	if _, err := c.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("ops: cordon node/%s: %w", node, err)
	}
	return nil
}
