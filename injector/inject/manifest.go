package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/meshconfig"
)

// Manifest injects every Pod and pod template (Deployment, StatefulSet,
// DaemonSet, ReplicaSet, Job, CronJob) of a multi-document YAML stream and
// writes the stream back; other documents pass through unchanged. This is
// `weft-injector inject -f` (the offline twin of the webhook, for GitOps
// pipelines and for looking at what the webhook would do).
func Manifest(r io.Reader, w io.Writer, mc meshconfig.Config, tpl Template) error {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	first := true
	for n := 1; ; n++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("inject: manifest document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		out, err := manifestDoc(doc, mc, tpl)
		if err != nil {
			return fmt.Errorf("inject: manifest document %d: %w", n, err)
		}
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return fmt.Errorf("inject: write: %w", err)
			}
		}
		first = false
		if _, err := w.Write(out); err != nil {
			return fmt.Errorf("inject: write: %w", err)
		}
	}
}

func manifestDoc(doc []byte, mc meshconfig.Config, tpl Template) ([]byte, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	var meta *metav1.ObjectMeta
	var spec *corev1.PodSpec
	switch {
	case tm.APIVersion == "v1" && tm.Kind == "Pod":
		o := &corev1.Pod{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec
	case tm.APIVersion == "apps/v1" && tm.Kind == "Deployment":
		o := &appsv1.Deployment{}
		obj, meta, spec = o, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case tm.APIVersion == "apps/v1" && tm.Kind == "StatefulSet":
		o := &appsv1.StatefulSet{}
		obj, meta, spec = o, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case tm.APIVersion == "apps/v1" && tm.Kind == "DaemonSet":
		o := &appsv1.DaemonSet{}
		obj, meta, spec = o, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case tm.APIVersion == "apps/v1" && tm.Kind == "ReplicaSet":
		o := &appsv1.ReplicaSet{}
		obj, meta, spec = o, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case tm.APIVersion == "batch/v1" && tm.Kind == "Job":
		o := &batchv1.Job{}
		obj, meta, spec = o, &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case tm.APIVersion == "batch/v1" && tm.Kind == "CronJob":
		o := &batchv1.CronJob{}
		obj, meta, spec = o, &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
	default:
		return ensureNewline(doc), nil
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	skipped, err := PodTemplate(meta, spec, mc, tpl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if skipped != "" {
		return ensureNewline(doc), nil
	}
	return marshalClean(obj)
}

// marshalClean writes obj as YAML without the empty status and null
// creationTimestamp fields that typed structs always carry.
func marshalClean(obj any) ([]byte, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	prune(m)
	return yaml.Marshal(m)
}

// prune drops "creationTimestamp": null and empty "status" objects at
// every level (templates carry their own metadata).
func prune(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	if ts, ok := m["creationTimestamp"]; ok && ts == nil {
		delete(m, "creationTimestamp")
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	for _, c := range m {
		switch c := c.(type) {
		case map[string]any:
			prune(c)
		case []any:
			for _, e := range c {
				prune(e)
			}
		}
	}
}

func ensureNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b, '\n')
	}
	return b
}
