package launch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// workloadEntries returns the WorkloadEntries of a multi-document mesh file.
// It reads only what the launcher needs; the control plane's registry/file is
// the authority on whether the file is valid, and rejects it with file, line
// and field when it is not.
func workloadEntries(name string, data []byte) ([]*v1alpha1.WorkloadEntry, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*v1alpha1.WorkloadEntry
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("launch: %s: document %d: %w", name, i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := k8syaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("launch: %s: document %d: %w", name, i, err)
		}
		if tm.Kind != "WorkloadEntry" || tm.APIVersion != v1alpha1.SchemeGroupVersion.String() {
			continue
		}
		e := &v1alpha1.WorkloadEntry{}
		if err := k8syaml.Unmarshal(doc, e); err != nil {
			return nil, fmt.Errorf("launch: %s: document %d (WorkloadEntry): %w", name, i, err)
		}
		out = append(out, e)
	}
}
