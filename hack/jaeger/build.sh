#!/usr/bin/env bash
# Builds the Jaeger v2 binary (OpenTelemetry-collector based) from the Go
# module github.com/jaegertracing/jaeger and caches it; prints its path.
#
#   hack/jaeger/build.sh            # -> <cache>/jaeger-<version>/jaeger
#
# The version is pinned here and only here (JAEGER_MODULE_VERSION overrides
# it for experiments). The module's Go tags v1.7x.y mirror the v2.x
# releases. Cache: $WEFT_CACHE_DIR (default <repo>/.cache/jaeger).
#
# Why a scratch module: Jaeger's go.mod has `replace` lines, so
# `go install ...@version` is refused. We copy those replaces into a tiny
# module, seed go.sum from Jaeger's own go.sum (the checksum database
# reachable here misses at least one otel-contrib version), and build.
# Cold: about 3-5 minutes on 2 cores, ~2 GiB; warm: instant (cached binary).
set -euo pipefail
JAEGER_VERSION_PINNED="v1.76.0"
JV="${JAEGER_MODULE_VERSION:-$JAEGER_VERSION_PINNED}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${WEFT_CACHE_DIR:-$ROOT/.cache/jaeger}"
BIN="$CACHE/jaeger-$JV/jaeger"
export PATH="/usr/local/go/bin:$PATH" GOFLAGS="${GOFLAGS:--buildvcs=false}" GOWORK=off
log() { echo "[jaeger-build] $*" >&2; }

if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$(dirname "$BIN")"
mod="$CACHE/src/jaeger-$JV"; mkdir -p "$mod"
t0=$(date +%s)
(
  cd "$mod"
  go mod download "github.com/jaegertracing/jaeger@$JV"
  jdir="$(go env GOMODCACHE)/github.com/jaegertracing/jaeger@$JV"
  { echo "module local/jaegerbuild"; echo; echo "go 1.25"; echo
    echo "require github.com/jaegertracing/jaeger $JV"; echo
    grep -E '^replace ' "$jdir/go.mod" || true; } > go.mod
  install -m 644 "$jdir/go.sum" go.sum
  go get "github.com/jaegertracing/jaeger/cmd/jaeger@$JV"
  log "building jaeger $JV (cold: several minutes)"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
  mv "$BIN.tmp" "$BIN"
)
log "built $BIN in $(( $(date +%s) - t0 )) s"
echo "$BIN"
