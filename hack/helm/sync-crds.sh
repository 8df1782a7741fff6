#!/usr/bin/env bash
# Copies the generated CRDs (api/crds, the one source, written by
# `make generate`) into the chart (charts/weft/files/crds, rendered by
# templates/crds.yaml). With --check, fails if the chart's copy differs.
#   hack/helm/sync-crds.sh [--check]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
src="$root/api/crds" dst="$root/charts/weft/files/crds"
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r -x "*.go" "$src" "$dst"; then
    echo "FAIL: charts/weft/files/crds differs from api/crds: run hack/helm/sync-crds.sh (make helm-generate)"; exit 1
  fi
  echo "ok: chart CRDs identical to api/crds"; exit 0
fi
mkdir -p "$dst"
rm -f "$dst"/*.yaml
cp "$src"/*.yaml "$dst"/
echo "copied $(ls "$src"/*.yaml | wc -l) CRDs into charts/weft/files/crds"
