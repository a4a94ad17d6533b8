package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestBuild builds a kustomization as kubectl apply -k would: the
// namespace and image transformers apply, and the Namespace comes first
// whatever the order of the files.
func TestBuild(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"kustomization.yaml": "namespace: demo\nresources:\n  - deploy.yaml\n  - ns.yaml\nimages:\n  - name: app\n    newTag: v2\n",
		"ns.yaml":            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n",
		"deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n" +
			"  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: app\n          image: app:dev\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetKind() != "Namespace" || objs[1].GetKind() != "Deployment" {
		t.Fatalf("Build gave %d objects, first %s; want the Namespace then the Deployment", len(objs), objs[0].GetKind())
	}
	d := objs[1]
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if d.GetNamespace() != "demo" || len(containers) != 1 || containers[0].(map[string]any)["image"] != "app:v2" {
		t.Errorf("Deployment %s/%s containers %v; want namespace demo and image app:v2", d.GetNamespace(), d.GetName(), containers)
	}

	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources:\n  - missing.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(dir); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Build of a kustomization naming a missing file: %v; want an error naming it", err)
	}
}
