#!/usr/bin/env bash
# Regenerates ca.pb.go (the messages) from ca.proto, and cav1grpc/service.pb.go
# and cav1grpc/service_grpc.pb.go (grpc-go's server and client) from
# cav1grpc/service.proto.
# Needs protoc (Debian: apt-get install -y protobuf-compiler); installs the two
# pinned Go plugins into <repo>/.cache/tools/bin when they are missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin="$root/.cache/tools/bin"
mkdir -p "$bin"
[ -x "$bin/protoc-gen-go" ] || GOBIN="$bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
[ -x "$bin/protoc-gen-go-grpc" ] || GOBIN="$bin" go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
command -v protoc >/dev/null || { echo "generate.sh: protoc not found (apt-get install -y protobuf-compiler)" >&2; exit 1; }
cd "$here"
PATH="$bin:$PATH" protoc -I . \
  --go_out=. --go_opt=paths=source_relative \
  ca.proto
PATH="$bin:$PATH" protoc -I . \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  cav1grpc/service.proto
