module github.com/weftmesh/weft/tests

go 1.26.0

require github.com/weftmesh/weft/api v0.0.0

replace github.com/weftmesh/weft/api => ../api
