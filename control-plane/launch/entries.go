package launch

import (
	"fmt"

	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

// workloadEntries returns the workloads (WorkloadEntries) of a mesh file. The
// file is parsed and validated exactly as the control plane's file registry
// does, so a bad file fails here with file, line and field before anything
// starts.
func workloadEntries(name string, data []byte) ([]model.Workload, error) {
	st, err := file.Parse(name, data)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	return st.Workloads, nil
}
