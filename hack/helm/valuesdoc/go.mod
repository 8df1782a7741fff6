module github.com/weftmesh/weft/hack/helm/valuesdoc

go 1.26.0
