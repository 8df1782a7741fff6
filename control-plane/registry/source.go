package registry

import (
	"context"

	"github.com/weftmesh/weft/control-plane/model"
)

// Source produces the mesh's state. See the package doc for the contract.
type Source interface {
	// Run reads the registry and calls push with every new good state until
	// ctx is done. It returns nil when ctx ends.
	Run(ctx context.Context, push func(model.State)) error
}
