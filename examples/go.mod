module github.com/weftmesh/weft/examples

go 1.26.0

require github.com/weftmesh/weft/api v0.0.0

replace github.com/weftmesh/weft/api => ../api
