package inject

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
)

func TestManifest(t *testing.T) {
	in := `apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: app, image: x}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  template:
    metadata: {labels: {weft.dev/inject: disabled}}
    spec:
      restartPolicy: Never
      containers: [{name: app, image: x}]
`
	var out bytes.Buffer
	if err := Manifest(strings.NewReader(in), &out, meshconfig.Config{}, testTemplate()); err != nil {
		t.Fatal(err)
	}
	docs := splitDocs(t, out.Bytes())
	if len(docs) != 3 {
		t.Fatalf("got %d documents, want 3:\n%s", len(docs), out.String())
	}
	if !strings.Contains(docs[0], "kind: Service") || strings.Contains(docs[0], mesh.ContainerSidecar) {
		t.Errorf("Service changed:\n%s", docs[0])
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &d); err != nil {
		t.Fatal(err)
	}
	ic := d.Spec.Template.Spec.InitContainers
	if len(ic) != 2 || ic[0].Name != mesh.ContainerInit || ic[1].Name != mesh.ContainerSidecar {
		t.Errorf("deployment template not injected: %+v", ic)
	}
	if _, ok := d.Spec.Template.Annotations[mesh.AnnotationInjected]; !ok {
		t.Error("no injected annotation on the template")
	}
	if strings.Contains(docs[1], "creationTimestamp") || strings.Contains(docs[1], "status:") {
		t.Errorf("noise fields in output:\n%s", docs[1])
	}
	if strings.Contains(docs[2], mesh.ContainerSidecar) {
		t.Errorf("opted-out Job injected:\n%s", docs[2])
	}

	// Offline output fed back in is unchanged (idempotent).
	var again bytes.Buffer
	if err := Manifest(bytes.NewReader(out.Bytes()), &again, meshconfig.Config{}, testTemplate()); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("second pass changed the manifest:\n%s", again.String())
	}
}

func TestManifestErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unknown field", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containerz: []}\n", `manifest document 1: Pod: error unmarshaling JSON: while decoding JSON: json: unknown field "containerz"`},
		{"bad annotation", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {weft.dev/exclude-outbound-ports: x}}\nspec: {containers: [{name: a, image: b}]}\n", `"x" is not a port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Manifest(strings.NewReader(tc.in), &bytes.Buffer{}, meshconfig.Config{}, testTemplate())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func splitDocs(t *testing.T, b []byte) []string {
	t.Helper()
	var docs []string
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		d, err := r.Read()
		if err != nil {
			break
		}
		docs = append(docs, string(d))
	}
	return docs
}
