#!/usr/bin/env bash
# Build the real Kubernetes control-plane binaries the e2e harness runs:
# etcd, kube-apiserver, kube-controller-manager and kubectl, from Go modules
# only (no Docker, no GitHub/GCS downloads: the Go module proxy is enough).
#
#   hack/k8s/build.sh            # builds what is missing, prints the bin dir on stdout
#   hack/k8s/build.sh --print    # only print the bin dir (no build)
#
# Versions: hack/k8s/versions.env (the one place they are pinned).
# Output:   $WEFT_K8S_CACHE/k8s-v$K8S_VERSION/bin/{etcd,kube-apiserver,kube-controller-manager,kubectl}
#           WEFT_K8S_CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/weft.
#           tests/kubeharness looks there by default (or in $WEFT_K8S_BIN).
#
# Why scratch modules: k8s.io/kubernetes' go.mod maps every k8s.io/* staging
# module to ./staging/... with `replace`, so `go install k8s.io/kubernetes/cmd/x@v`
# is refused. A tiny module that requires k8s.io/kubernetes and replaces each
# staging module with its published v0.X.Y twin builds fine. etcd's server/v3
# go.mod has relative replaces too, so it gets the same treatment.
#
# Cost (2 cores, Go 1.26.8, empty GOCACHE): kube-apiserver ~4 min (peak RSS
# ~2.2 GiB), kube-controller-manager ~1.5 min (~2.5 GiB), kubectl ~1 min,
# etcd ~20 s: ~7 min cold. With a warm GOCACHE everything relinks in ~20 s; a
# binary that is already in the bin dir (with a matching .stamp) is not rebuilt.
# Binaries are built ONE AT A TIME to bound memory; a lock file serialises
# concurrent invocations (CI and a developer, two test packages...).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE="${WEFT_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weft}"
BIN="$CACHE/k8s-v$K8S_VERSION/bin"
SRC="$CACHE/src"
if [[ "${1:-}" == "--print" ]]; then echo "$BIN"; exit 0; fi

export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOWORK=off          # never pick up the repository's go.work
[[ -d /usr/local/go/bin ]] && export PATH="/usr/local/go/bin:$PATH"
mkdir -p "$BIN" "$SRC"

log() { echo "[k8s-build] $*" >&2; }

# One builder at a time (memory: each link peaks at ~2.5 GiB).
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then log "another build holds $CACHE/.build.lock; waiting"; flock 9; fi

KMAJ="${K8S_VERSION%%.*}"; rest="${K8S_VERSION#*.}"; KMIN="${rest%%.*}"
STAGING_VERSION="v0.${K8S_VERSION#*.}"          # 1.37.2 -> v0.37.2
GOVER="$(go env GOVERSION)"

# have NAME VERSION: the binary exists and was built from this version with this Go.
have() { [[ -x "$BIN/$1" && "$(cat "$BIN/$1.stamp" 2>/dev/null)" == "$2 $GOVER" ]]; }
stamp() { echo "$2 $GOVER" > "$BIN/$1.stamp"; }

prepare_k8s() {
  local mod="$SRC/k8s-$K8S_VERSION"
  [[ -f "$mod/go.sum" && -f "$mod/.complete" ]] && { echo "$mod"; return 0; }
  log "preparing scratch module $mod"
  rm -rf "$mod"; mkdir -p "$mod"
  ( cd "$mod"
    cat > go.mod <<MOD
module local/k8sbuild
MOD
    go mod download "k8s.io/kubernetes@v$K8S_VERSION" >&2
    local kgomod
    kgomod="$(go env GOMODCACHE)/k8s.io/kubernetes@v$K8S_VERSION/go.mod"
    {
      echo "module local/k8sbuild"; echo
      echo "go $(awk '/^go /{print $2; exit}' "$kgomod")"; echo
      echo "require k8s.io/kubernetes v$K8S_VERSION"; echo
      echo "replace ("
      # every `k8s.io/foo => ./staging/src/k8s.io/foo` becomes `=> k8s.io/foo v0.X.Y`
      awk -v sv="$STAGING_VERSION" '$2=="=>" && $3 ~ /^\.\/staging\// {print "\t"$1" => "$1" "sv}' "$kgomod"
      echo ")"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy >&2 && touch .complete )
  echo "$mod"
}

build_k8s() {
  local cmd missing=() mod
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    have "$cmd" "v$K8S_VERSION" || missing+=("$cmd")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  mod="$(prepare_k8s)"
  # Same version stamping as kubernetes' hack/lib/version.sh, so /version
  # reports vX.Y.Z (helm's kubeVersion checks and client skew logic read it).
  local ldf="-s -w" p
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldf+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=$KMAJ -X $p.gitMinor=$KMIN"
    ldf+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in "${missing[@]}"; do
    local t0=$SECONDS
    log "building $cmd v$K8S_VERSION (cold: minutes, up to ~2.5 GiB RAM)"
    ( cd "$mod" && CGO_ENABLED=0 go build -trimpath -tags=selinux,notest,grpcnotrace \
        -ldflags "$ldf" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" )
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    stamp "$cmd" "v$K8S_VERSION"
    log "built $cmd in $((SECONDS - t0)) s"
  done
}

build_etcd() {
  have etcd "v$ETCD_VERSION" && return 0
  local mod="$SRC/etcd-$ETCD_VERSION" t0=$SECONDS
  if [[ ! -f "$mod/go.sum" || ! -f "$mod/.complete" ]]; then
    log "preparing scratch module $mod"
    rm -rf "$mod"; mkdir -p "$mod"
    ( cd "$mod"
      cat > go.mod <<MOD
module local/etcdbuild

go 1.25

require (
	go.etcd.io/etcd/server/v3 v$ETCD_VERSION
	go.etcd.io/etcd/api/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/v3 v$ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 v$ETCD_VERSION
)
MOD
      cat > tools.go <<'GO'
//go:build tools

package etcdbuild

import _ "go.etcd.io/etcd/server/v3/etcdmain"
GO
      go mod tidy >&2 && touch .complete )
  fi
  log "building etcd v$ETCD_VERSION"
  ( cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 )
  mv "$BIN/etcd.tmp" "$BIN/etcd"
  stamp etcd "v$ETCD_VERSION"
  log "built etcd in $((SECONDS - t0)) s"
}

T0=$SECONDS
build_etcd
build_k8s
log "binaries ready in $BIN ($((SECONDS - T0)) s)"
echo "$BIN"
