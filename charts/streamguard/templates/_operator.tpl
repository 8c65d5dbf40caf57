{{/* Arguments of `streamguard operator run` (the container's entrypoint is `streamguard`). */}}
{{- define "streamguard.operatorArgs" -}}
- operator
- run
{{- if .Values.operator.watchNamespaces }}
{{- range .Values.operator.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- if include "streamguard.peering" . }}
- --peering={{ .Values.operator.peering.name }}
{{- else }}
- --standalone
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.operator.healthPort }}/healthz
- --metrics-port={{ .Values.operator.metricsPort }}
{{- if .Values.operator.verbose }}
- --verbose
{{- end }}
{{- end }}

{{/* STREAMGUARD_OPERATOR_* settings (streamguard.operator.settings.OperatorSettings). */}}
{{- define "streamguard.operatorEnv" -}}
- name: POD_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: STREAMGUARD_OPERATOR_IMAGE
  value: {{ include "streamguard.image" . | quote }}
- name: STREAMGUARD_OPERATOR_SPARK_IMAGE
  value: {{ include "streamguard.sparkImage" . | quote }}
- name: STREAMGUARD_OPERATOR_IMAGE_PULL_POLICY
  value: {{ .Values.image.pullPolicy | quote }}
- name: STREAMGUARD_OPERATOR_REDIS_SECRET_NAME
  value: {{ include "streamguard.redisSecretName" . | quote }}
- name: STREAMGUARD_OPERATOR_REDIS_SECRET_KEY
  value: {{ include "streamguard.redisSecretKey" . | quote }}
- name: STREAMGUARD_OPERATOR_CHECKPOINT_STORAGE
  value: {{ .Values.workloads.checkpointStorage | quote }}
- name: STREAMGUARD_OPERATOR_CHECKPOINT_STORAGE_CLASS
  value: {{ .Values.workloads.checkpointStorageClass | quote }}
- name: STREAMGUARD_OPERATOR_WORKERS
  value: {{ .Values.operator.workers | quote }}
{{- with .Values.operator.feastRegistry }}
- name: STREAMGUARD_OPERATOR_FEAST_REGISTRY
  value: {{ . | quote }}
- name: STREAMGUARD_OBJECT_STORE_SECRET
  value: {{ $.Values.operator.objectStoreSecret | quote }}
{{- range $variable, $key := dict "AWS_ENDPOINT_URL" "endpoint" "AWS_REGION" "region" "AWS_ACCESS_KEY_ID" "accessKeyId" "AWS_SECRET_ACCESS_KEY" "secretAccessKey" }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.operator.objectStoreSecret | quote }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- range $kind, $resources := .Values.workloads.resources }}
{{- with $resources }}
- name: STREAMGUARD_OPERATOR_{{ $kind | upper }}_RESOURCES
  value: {{ toJson . | quote }}
{{- end }}
{{- end }}
{{- range $key, $value := .Values.operator.settings }}
- name: STREAMGUARD_OPERATOR_{{ $key | upper }}
  value: {{ (kindIs "string" $value) | ternary $value ($value | toJson) | quote }}
{{- end }}
{{- end }}
