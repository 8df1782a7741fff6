// Package crds embeds the generated CRD YAML of api/v1alpha1 (`make
// generate` writes the files; this file is not generated) so tools such as
// `weftctl check` can compare a cluster's CRDs with the ones this build
// expects.
package crds

import "embed"

// FS holds every weft.dev_*.yaml CRD of this directory.
//
//go:embed *.yaml
var FS embed.FS
