module github.com/weftmesh/weft/control-plane

go 1.26.0

replace github.com/weftmesh/weft/api => ../api
