// Package shop is the shop demo: app/ is the service (one binary, cmd/shop,
// with a --role), cmd/shop-demo the demo driver, mesh.yaml its mesh file.
package shop
