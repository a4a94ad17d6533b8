package nodeagent

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// imagePath is the PATH of a distroless or Debian image, which a runtime
// passes on from the image's config; the pod's env can override it.
const imagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// configSource reads the objects that env and envFrom refer to.
type configSource interface {
	secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	configMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
}

// errConfig is a container configuration the agent cannot make yet or at
// all (a missing Secret, an unsupported field); kubelet reports it as the
// container waiting in CreateContainerConfigError and tries again later.
type errConfig struct{ msg string }

func (e *errConfig) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &errConfig{msg: fmt.Sprintf(format, args...)}
}

// podFacts are the values of a pod that the downward API exposes.
type podFacts struct {
	podIP, hostIP netip.Addr
}

// containerEnv returns a container's environment, sorted by name, as
// kubelet builds it (pkg/kubelet/kubelet_pods.go, makeEnvironmentVariables):
// envFrom first, then env, each env value with $(VAR) references to
// variables defined before it expanded; then what a runtime adds: the
// image's PATH unless the pod sets one, and HOSTNAME, the pod's host name.
// Service links ({SVC}_SERVICE_HOST, …) are not made.
func containerEnv(ctx context.Context, src configSource, pod *corev1.Pod, c *corev1.Container, facts podFacts) ([]string, error) {
	env := map[string]string{}
	type object struct{ kind, name string }
	cache := map[object]map[string]string{}
	// data returns the entries of the Secret or ConfigMap (kind) name, or
	// nil for an optional one that does not exist.
	data := func(kind, name string, optional *bool) (map[string]string, error) {
		if d, ok := cache[object{kind, name}]; ok {
			return d, nil
		}
		d, err := objectData(ctx, src, kind, pod.Namespace, name)
		if err != nil {
			if optional != nil && *optional {
				return nil, nil
			}
			return nil, configErrorf("%s %q: %v", strings.ToLower(kind), name, err)
		}
		cache[object{kind, name}] = d
		return d, nil
	}

	for _, from := range c.EnvFrom {
		var d map[string]string
		var err error
		switch {
		case from.ConfigMapRef != nil:
			d, err = data("ConfigMap", from.ConfigMapRef.Name, from.ConfigMapRef.Optional)
		case from.SecretRef != nil:
			d, err = data("Secret", from.SecretRef.Name, from.SecretRef.Optional)
		}
		if err != nil {
			return nil, err
		}
		for k, v := range d {
			if len(validation.IsEnvVarName(from.Prefix+k)) == 0 {
				env[from.Prefix+k] = v
			}
		}
	}

	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = expand(e.Value, func(name string) (string, bool) {
				v, ok := env[name]
				return v, ok
			})
			continue
		}
		from := e.ValueFrom
		var kind, name, key string
		var optional *bool
		switch {
		case from.FieldRef != nil:
			v, err := fieldValue(pod, from.FieldRef.FieldPath, facts)
			if err != nil {
				return nil, err
			}
			env[e.Name] = v
			continue
		case from.SecretKeyRef != nil:
			ref := from.SecretKeyRef
			kind, name, key, optional = "Secret", ref.Name, ref.Key, ref.Optional
		case from.ConfigMapKeyRef != nil:
			ref := from.ConfigMapKeyRef
			kind, name, key, optional = "ConfigMap", ref.Name, ref.Key, ref.Optional
		default:
			return nil, configErrorf("env %s: only fieldRef, secretKeyRef and configMapKeyRef sources are supported by the lab's node agent", e.Name)
		}
		d, err := data(kind, name, optional)
		if err != nil {
			return nil, err
		}
		if d == nil {
			continue
		}
		v, ok := d[key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			return nil, configErrorf("couldn't find key %s in %s %s/%s", key, kind, pod.Namespace, name)
		}
		env[e.Name] = v
	}

	if _, ok := env["PATH"]; !ok {
		env["PATH"] = imagePath
	}
	if _, ok := env["HOSTNAME"]; !ok {
		env["HOSTNAME"] = podHostname(pod)
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

// objectData returns the entries of the Secret or ConfigMap (kind) name,
// as strings; never nil for one that exists.
func objectData(ctx context.Context, src configSource, kind, namespace, name string) (map[string]string, error) {
	d := map[string]string{}
	if kind == "Secret" {
		s, err := src.secret(ctx, namespace, name)
		if err != nil {
			return nil, err
		}
		for k, v := range s.Data {
			d[k] = string(v)
		}
		return d, nil
	}
	m, err := src.configMap(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	maps.Copy(d, m.Data)
	return d, nil
}

// podHostname is the host name a runtime gives a pod's containers: its
// spec.hostname, else its name, cut to 63 bytes.
func podHostname(pod *corev1.Pod) string {
	name := pod.Name
	if pod.Spec.Hostname != "" {
		name = pod.Spec.Hostname
	}
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	return name
}

// fieldValue resolves a downward API fieldRef.
func fieldValue(pod *corev1.Pod, path string, facts podFacts) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return facts.hostIP.String(), nil
	case "status.podIP", "status.podIPs":
		return facts.podIP.String(), nil
	}
	return "", configErrorf("fieldRef %q is not supported by the lab's node agent", path)
}

// subscript parses "prefix['key']".
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// expand replaces $(NAME) in s by lookup's value, with Kubernetes' rules
// for env values, command and args: "$$" is a literal "$", a reference to
// an undefined name and an unclosed "$(" stay as written.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			ref := s[i : i+3+end]
			if v, ok := lookup(s[i+2 : i+2+end]); ok {
				b.WriteString(v)
			} else {
				b.WriteString(ref)
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
