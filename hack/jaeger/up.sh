#!/usr/bin/env bash
# Starts Jaeger v2 (memory storage, OTLP receivers only) on loopback and
# waits until its query API answers; the pid goes to DIR/jaeger.pid.
#
#   hack/jaeger/up.sh DIR          # stop: kill "$(cat DIR/jaeger.pid)"
#
# Env: JAEGER_HOST (127.0.0.1), JAEGER_OTLP_GRPC_PORT (4317),
# JAEGER_OTLP_HTTP_PORT (4318), JAEGER_QUERY_PORT (16686),
# JAEGER_QUERY_GRPC_PORT (16685), JAEGER_HEALTH_PORT (13133).
# The module ships no built UI: the query HTTP API (/api/traces/<id>,
# /api/services) is what works locally.
set -euo pipefail
DIR="${1:?usage: up.sh DIR}"; mkdir -p "$DIR"; DIR="$(cd "$DIR" && pwd)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$("$HERE/build.sh")"
H="${JAEGER_HOST:-127.0.0.1}"
OTLP_GRPC="${JAEGER_OTLP_GRPC_PORT:-4317}" OTLP_HTTP="${JAEGER_OTLP_HTTP_PORT:-4318}"
QUERY_HTTP="${JAEGER_QUERY_PORT:-16686}" QUERY_GRPC="${JAEGER_QUERY_GRPC_PORT:-16685}"
HEALTH="${JAEGER_HEALTH_PORT:-13133}"
if [[ -f "$DIR/jaeger.pid" ]] && kill -0 "$(cat "$DIR/jaeger.pid")" 2>/dev/null; then
  echo "[jaeger-up] already running" >&2; exit 0
fi
"$HERE/config.sh" "$H" "$OTLP_GRPC" "$OTLP_HTTP" "$QUERY_HTTP" "$QUERY_GRPC" "$HEALTH" > "$DIR/jaeger.yaml"
setsid "$BIN" --config "$DIR/jaeger.yaml" > "$DIR/jaeger.log" 2>&1 < /dev/null &
echo $! > "$DIR/jaeger.pid"
for _ in $(seq 300); do
  curl -fsS -o /dev/null "http://$H:$QUERY_HTTP/api/services" 2>/dev/null && break
  kill -0 "$(cat "$DIR/jaeger.pid")" 2>/dev/null || { tail -20 "$DIR/jaeger.log" >&2; exit 1; }
  sleep 0.1
done
echo "[jaeger-up] ready: OTLP/HTTP $H:$OTLP_HTTP (the mesh's tracing endpoint), OTLP gRPC $H:$OTLP_GRPC, query API http://$H:$QUERY_HTTP" >&2
