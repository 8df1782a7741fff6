// Command xdsproto generates api/xdsproto: trimmed copies of the Envoy xDS
// protobuf types the sidecar reads, wire-compatible with Envoy's.
//
// The sidecar decodes xDS resources into these types instead of linking
// go-control-plane's, which register every message their .proto files
// import (hundreds) and carry generated validation code: most of the
// sidecar's executable and of the pages it touches at start.
//
// It reads the real descriptors from go-control-plane's generated packages
// (protoregistry.GlobalFiles), keeps the messages that keep() declares and,
// in each, the fields whose types are kept (scalars, enums, declared
// messages, map entries and the google.protobuf / google.rpc types;
// field numbers and types unchanged), renames each package P to
// weft.xds.P (so both sets can be linked into one test binary without a
// registry conflict) and its go_package to api/xdsproto/..., and runs
// protoc-gen-go's generator as a library: no protoc needed. Of the
// options, fields keep packed and their PGV rules, oneofs (validate.required);
// the PGV rules are also written to api/xdsproto/zz_generated.rules.go as
// Go composite literals of the validate types (static data), which
// xdsproto.Validate reads instead of the descriptors' options (which
// protobuf-go would decode and keep per field: 0.43 MB of live heap for a
// representative configuration).
//
// Run from the api module: go run ./hack/xdsproto -out . (make generate).
package main
