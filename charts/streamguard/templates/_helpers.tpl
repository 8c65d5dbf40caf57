{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "streamguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "streamguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streamguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; pass (dict "ctx" $ "component" "operator"). */}}
{{- define "streamguard.labels" -}}
helm.sh/chart: {{ include "streamguard.chart" .ctx }}
{{ include "streamguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: streamguard
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "streamguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamguard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streamguard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "streamguard.sparkImage" -}}
{{- printf "%s:%s" .Values.image.sparkRepository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "streamguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streamguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "streamguard.servingName" -}}
{{- if .Values.serving.fullnameOverride }}
{{- .Values.serving.fullnameOverride }}
{{- else }}
{{- printf "%s-serving" (include "streamguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "streamguard.operatorName" -}}
{{- printf "%s-operator" (include "streamguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamguard.redisName" -}}
{{- printf "%s-redis" (include "streamguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the Redis URL: the dev Redis's own when it is on, the existing one otherwise. */}}
{{- define "streamguard.redisSecretName" -}}
{{- if .Values.devRedis.enabled }}
{{- include "streamguard.redisName" . }}
{{- else }}
{{- required "connections.redis.existingSecret is required (or set devRedis.enabled for development)" .Values.connections.redis.existingSecret }}
{{- end }}
{{- end }}

{{- define "streamguard.redisSecretKey" -}}
{{- if .Values.devRedis.enabled }}url{{ else }}{{ .Values.connections.redis.secretKey }}{{ end }}
{{- end }}

{{/* The Redis Secret's private CA (key connections.redis.caKey), optional, as the read-only file
/etc/streamguard/secrets/redis-ca/ca.crt (streamguard.operator.render.common.REDIS_CA_FILE) of a pod talking to
Redis; only that key lands on disk. Pass (list . "mounts") or (list . "volumes"). */}}
{{- define "streamguard.redisCaFiles" -}}
{{- $root := index . 0 }}
{{- if eq (index . 1) "mounts" }}
- name: redis-ca
  mountPath: /etc/streamguard/secrets/redis-ca
  readOnly: true
{{- else }}
- name: redis-ca
  secret:
    secretName: {{ include "streamguard.redisSecretName" $root | quote }}
    defaultMode: 0440
    optional: true
    items:
      - key: {{ $root.Values.connections.redis.caKey | quote }}
        path: ca.crt
{{- end }}
{{- end }}

{{/* Peering is on for more than one replica or when asked for. */}}
{{- define "streamguard.peering" -}}
{{- if or .Values.operator.peering.enabled (gt (int .Values.operator.replicas) 1) }}true{{ end }}
{{- end }}

{{/* Connection settings every StreamGuard container reads. */}}
{{- define "streamguard.connectionEnv" -}}
- name: STREAMGUARD_KAFKA_BOOTSTRAP
  value: {{ .Values.connections.kafka.bootstrapServers | quote }}
- name: STREAMGUARD_REGISTRY_URL
  value: {{ .Values.connections.schemaRegistry.url | quote }}
- name: STREAMGUARD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "streamguard.redisSecretName" . }}
      key: {{ include "streamguard.redisSecretKey" . }}
{{- end }}

{{/* The namespaces the operator watches, as a JSON list: operator.watchNamespaces, else the release's own
namespace; empty (the whole cluster) only with operator.clusterWide, which excludes a list. */}}
{{- define "streamguard.watchedNamespaces" -}}
{{- if .Values.operator.clusterWide -}}
{{- if .Values.operator.watchNamespaces -}}
{{- fail "operator.clusterWide and operator.watchNamespaces exclude each other: set one of them" -}}
{{- end -}}
[]
{{- else -}}
{{- default (list .Release.Namespace) .Values.operator.watchNamespaces | toJson -}}
{{- end -}}
{{- end -}}
