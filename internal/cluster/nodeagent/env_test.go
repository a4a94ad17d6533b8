package nodeagent

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "EMPTY": "", "B": "$(A)"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "a"},
		{"x$(A)y$(A)", "xaya"},
		{"$(EMPTY)z", "z"},
		{"$(UNDEFINED)", "$(UNDEFINED)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$a"},
		{"$(A", "$(A"},
		{"a$", "a$"},
		{"$x", "$x"},
		{"$()", "$()"},
		{"$(B)", "$(A)"}, // no second pass
	} {
		if got := expand(tc.in, lookup); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// fakeSource serves Secrets and ConfigMaps from maps.
type fakeSource struct {
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
}

var errNotFound = errors.New("not found")

func (f fakeSource) secret(_ context.Context, _, name string) (*corev1.Secret, error) {
	if s, ok := f.secrets[name]; ok {
		return s, nil
	}
	return nil, errNotFound
}

func (f fakeSource) configMap(_ context.Context, _, name string) (*corev1.ConfigMap, error) {
	if m, ok := f.configMaps[name]; ok {
		return m, nil
	}
	return nil, errNotFound
}

func TestContainerEnv(t *testing.T) {
	src := fakeSource{
		secrets:    map[string]*corev1.Secret{"admin": {Data: map[string][]byte{"token": []byte("s3cret")}}},
		configMaps: map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"MODE": "fast", "bad-name": "x"}}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", UID: "u-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
	}
	facts := podFacts{podIP: netip.MustParseAddr("10.0.0.7"), hostIP: netip.MustParseAddr("10.0.0.1")}
	optional := true
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}, Prefix: "CFG_"}},
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "token"}}},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: &optional}}},
			{Name: "ADDR", Value: "$(POD_IP):50051"},
			{Name: "LATER", Value: "$(DEFINED_BELOW)"},
			{Name: "DEFINED_BELOW", Value: "x"},
		},
	}
	env, err := containerEnv(context.Background(), src, pod, c, facts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// Any printable name is valid since 1.34 (RelaxedEnvironmentVariableValidation).
		"ADDR=10.0.0.7:50051", "APP=web", "CFG_MODE=fast", "CFG_bad-name=x", "DEFINED_BELOW=x", "HOSTNAME=web-1",
		"LATER=$(DEFINED_BELOW)", "PATH=" + imagePath, "POD_IP=10.0.0.7", "POD_NAME=web-1", "POD_NS=ns", "TOKEN=s3cret",
	}
	if !slices.Equal(env, want) {
		t.Errorf("env:\n%s\nwant:\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}

	for _, tc := range []struct {
		env  corev1.EnvVar
		want string
	}{
		{corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "hello-admin"}, Key: "token"}}},
			`secret "hello-admin": not found`},
		{corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "nope"}}},
			"couldn't find key nope in Secret ns/admin"},
		{corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.phase"}}},
			`fieldRef "status.phase" is not supported`},
		{corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			"only fieldRef, secretKeyRef and configMapKeyRef"},
	} {
		_, err := containerEnv(context.Background(), src, pod, &corev1.Container{Env: []corev1.EnvVar{tc.env}}, facts)
		var ce *errConfig
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %+v: error %v; want a configuration error saying %q", tc.env, err, tc.want)
		}
	}
}
