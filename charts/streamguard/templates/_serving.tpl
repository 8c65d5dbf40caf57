{{/* Namespace whose FeatureViews and StreamingWindows serving watches. */}}
{{- define "streamguard.servingNamespace" -}}
{{- default .Release.Namespace .Values.serving.namespace }}
{{- end }}

{{/* Arguments of `streamguard serve` (as streamguard.serving.manifests renders them). */}}
{{- define "streamguard.servingArgs" -}}
- serve
- --from-cluster={{ include "streamguard.servingNamespace" . }}
- --host=0.0.0.0
- --port={{ .Values.serving.port }}
- --workers={{ .Values.serving.workers }}
- --cache-staleness={{ .Values.serving.cacheStaleness }}
- --max-batch={{ .Values.serving.maxBatch }}
- {{ printf "--required-views=%s" (join "," .Values.serving.requiredViews) | quote }}
- {{ printf "--advisory-views=%s" (join "," .Values.serving.advisoryViews) | quote }}
- --log-level={{ .Values.serving.logLevel }}
{{- end }}
