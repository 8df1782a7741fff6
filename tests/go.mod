module github.com/weftmesh/weft/tests

go 1.26.0

require (
	github.com/weftmesh/weft/api v0.0.0
	github.com/weftmesh/weft/control-plane v0.0.0
	github.com/weftmesh/weft/examples v0.0.0
)

require (
	github.com/weftmesh/weft/injector v0.0.0
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	k8s.io/api v0.37.2 // indirect
	k8s.io/apimachinery v0.37.2 // indirect
	k8s.io/client-go v0.37.2 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)

replace (
	github.com/weftmesh/weft/api => ../api
	github.com/weftmesh/weft/control-plane => ../control-plane
	github.com/weftmesh/weft/examples => ../examples
)

replace github.com/weftmesh/weft/injector => ../injector
