{{/*
Names. They are fixed (not derived from the release name) because the mesh
refers to them: api/mesh/identity.go, install.go and egress.go hold the same
values, and tests/e2e/helm checks the rendered chart against them.
*/}}
{{- define "weft.namespace" -}}weft-system{{- end -}}
{{- define "weft.controlPlane" -}}weft-control-plane{{- end -}}
{{- define "weft.injector" -}}weft-injector{{- end -}}
{{- define "weft.webhookTLSSecret" -}}weft-webhook-tls{{- end -}}
{{- define "weft.caSecret" -}}weft-ca{{- end -}}
{{- define "weft.meshConfig" -}}weft-mesh-config{{- end -}}
{{- define "weft.trustBundle" -}}weft-ca-root{{- end -}}
{{- define "weft.egressGateway" -}}weft-egress-gateway{{- end -}}
{{- define "weft.jaeger" -}}weft-jaeger{{- end -}}

{{/* The chart only installs into weft-system: the SPIFFE ID of the control plane names it. */}}
{{- define "weft.checkNamespace" -}}
{{- if ne .Release.Namespace (include "weft.namespace" .) -}}
{{- fail (printf "weft: install into the namespace %s (helm install weft charts/weft -n %s --create-namespace), not %q: the control plane's SPIFFE ID and the mesh config name it" (include "weft.namespace" .) (include "weft.namespace" .) .Release.Namespace) -}}
{{- end -}}
{{- if and (gt (int .Values.controlPlane.replicas) 1) (not .Values.controlPlane.leaderElection.enabled) -}}
{{- fail "weft: controlPlane.replicas > 1 needs controlPlane.leaderElection.enabled=true (only the leader may write the CA Secret and trust bundles)" -}}
{{- end -}}
{{- if and .Values.ca.external.enabled (not .Values.ca.external.secretName) -}}
{{- fail "weft: ca.external.enabled=true needs ca.external.secretName (a Secret with tls.crt, tls.key and ca.crt)" -}}
{{- end -}}
{{- end -}}

{{- define "weft.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "weft.image" -}}{{ printf "%s/%s:%s" .root.Values.image.registry .name (include "weft.tag" .root) }}{{- end -}}
{{- define "weft.proxyImage" -}}{{ .Values.proxy.image | default (include "weft.image" (dict "root" . "name" "weft-sidecar")) }}{{- end -}}

{{- define "weft.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: weft
app.kubernetes.io/version: {{ include "weft.tag" .root | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "weft.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* The xDS/CA address the proxies dial. */}}
{{- define "weft.xdsAddress" -}}
{{ printf "%s.%s.svc:15012" (include "weft.controlPlane" .) (include "weft.namespace" .) }}
{{- end -}}

{{/* Tracing endpoint: the value, else the in-cluster Jaeger when it is on. */}}
{{- define "weft.tracingEndpoint" -}}
{{- if .Values.mesh.tracing.endpoint -}}
{{ .Values.mesh.tracing.endpoint }}
{{- else if .Values.jaeger.enabled -}}
{{ printf "%s.%s.svc:4318" (include "weft.jaeger" .) (include "weft.namespace" .) }}
{{- end -}}
{{- end -}}

{{/* Pod and container security settings shared by every Weft pod. */}}
{{- define "weft.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1337
runAsGroup: 1337
fsGroup: 1337
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "weft.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
