module github.com/weftmesh/weft/examples

go 1.26.0

require (
	github.com/weftmesh/weft/api v0.0.0
	github.com/weftmesh/weft/control-plane v0.0.0
	go.yaml.in/yaml/v3 v3.0.5
)

replace (
	github.com/weftmesh/weft/api => ../api
	github.com/weftmesh/weft/control-plane => ../control-plane
)
