module github.com/weftmesh/weft/tests

go 1.26.0

require (
	github.com/weftmesh/weft/api v0.0.0
	github.com/weftmesh/weft/control-plane v0.0.0
	github.com/weftmesh/weft/examples v0.0.0
)

replace (
	github.com/weftmesh/weft/api => ../api
	github.com/weftmesh/weft/control-plane => ../control-plane
	github.com/weftmesh/weft/examples => ../examples
)
