#!/usr/bin/env bash
# Prints the Jaeger v2 config: memory storage, OTLP receivers, query API,
# everything bound on HOST (the harness in tests/jaegerharness writes the
# same document).
#   config.sh HOST OTLP_GRPC OTLP_HTTP QUERY_HTTP QUERY_GRPC HEALTH
set -euo pipefail
H="$1"
cat <<Y
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource: {service.name: jaeger}
    metrics: {level: none}
    logs: {level: info}
extensions:
  healthcheckv2:
    use_v2: true
    http: {endpoint: "$H:$6"}
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: "$H:$4"}
    grpc: {endpoint: "$H:$5"}
  jaeger_storage:
    backends:
      mem: {memory: {max_traces: 100000}}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "$H:$2"}
      http: {endpoint: "$H:$3"}
processors:
  batch: {timeout: 200ms}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
Y
