package ops

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// evictionRetry is how long kubectl drain waits before it asks again for
// an eviction that a PodDisruptionBudget refused (a variable for tests).
var evictionRetry = 5 * time.Second

// Eviction is what happened to one pod of a drain.
type Eviction struct {
	Namespace, Name string
	// Refused counts the evictions the API refused (429: a
	// PodDisruptionBudget allowed no disruption then).
	Refused int
	// Evicted is when the API accepted the eviction; Gone is when the pod
	// left the API (its node agent made the final delete).
	Evicted, Gone time.Time
}

// Drain cordons a Node and evicts every pod on it through the Eviction API,
// as "kubectl drain NODE --ignore-daemonsets --delete-emptydir-data" does:
// all pods at once, each eviction that a PodDisruptionBudget refuses asked
// again every 5 s, then waits until every evicted pod is gone from the API
// (or replaced by a pod of another UID). DaemonSet pods, mirror pods and
// pods already being deleted are left alone. It returns what happened to
// each pod; on error, what happened so far.
func Drain(ctx context.Context, c kubernetes.Interface, node string) ([]Eviction, error) {
	if err := Cordon(ctx, c, node, true); err != nil {
		return nil, err
	}
	list, err := c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("ops: drain node/%s: %w", node, err)
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.Spec.NodeName != node || p.DeletionTimestamp != nil || isDaemonSetPod(&p) || p.Annotations[corev1.MirrorPodAnnotationKey] != "" {
			continue
		}
		pods = append(pods, p)
	}
	out := make([]Eviction, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() { out[i], errs[i] = evictAndWait(ctx, c, &pods[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, fmt.Errorf("ops: drain node/%s: %w", node, err)
		}
	}
	return out, nil
}

func isDaemonSetPod(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller && o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}

// evictAndWait evicts one pod, asking again while a PodDisruptionBudget
// refuses, and waits until it is gone.
func evictAndWait(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) (Eviction, error) {
	e := Eviction{Namespace: p.Namespace, Name: p.Name}
	pods := c.CoreV1().Pods(p.Namespace)
	// Watch from before the eviction, so that the deletion is not missed.
	w, err := pods.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", p.Name).String(),
		ResourceVersion: p.ResourceVersion,
	})
	if err != nil {
		return e, err
	}
	defer func() { w.Stop() }() // w is replaced when the watch ends
	for {
		err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}})
		if err == nil {
			e.Evicted = time.Now()
			break
		}
		if apierrors.IsNotFound(err) {
			e.Evicted, e.Gone = time.Now(), time.Now()
			return e, nil
		}
		if !apierrors.IsTooManyRequests(err) {
			return e, fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		e.Refused++
		select {
		case <-ctx.Done():
			return e, fmt.Errorf("evict pod %s/%s: refused %d times (%v): %w", p.Namespace, p.Name, e.Refused, err, context.Cause(ctx))
		case <-time.After(evictionRetry):
		}
	}
	for {
		select {
		case <-ctx.Done():
			return e, fmt.Errorf("pod %s/%s evicted but not gone: %w", p.Namespace, p.Name, context.Cause(ctx))
		case ev, ok := <-w.ResultChan():
			if !ok {
				// The watch ended: look, and watch again if it is still there.
				cur, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) || (err == nil && cur.UID != p.UID) {
					e.Gone = time.Now()
					return e, nil
				}
				if err != nil {
					return e, err
				}
				w.Stop()
				if w, err = pods.Watch(ctx, metav1.ListOptions{
					FieldSelector:   fields.OneTermEqualSelector("metadata.name", p.Name).String(),
					ResourceVersion: cur.ResourceVersion,
				}); err != nil {
					return e, err
				}
				continue
			}
			if gone, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Deleted && gone.Name == p.Name && gone.UID == p.UID {
				e.Gone = time.Now()
				return e, nil
			}
		}
	}
}
