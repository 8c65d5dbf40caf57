{{/* Namespace whose FeatureViews and StreamingWindows serving watches. */}}
{{- define "streamguard.servingNamespace" -}}
{{- default .Release.Namespace .Values.serving.namespace }}
{{- end }}

{{/* Arguments of `streamguard serve`. */}}
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
- --max-body-bytes={{ int .Values.serving.limits.maxBodyBytes }}
- --max-entity-keys={{ int .Values.serving.limits.maxEntityKeys }}
- --max-concurrent-lookups={{ int .Values.serving.limits.maxConcurrentLookups }}
- --client-bytes-in-flight={{ int .Values.serving.limits.clientBytesInFlight }}
- --client-values-in-flight={{ int .Values.serving.limits.clientValuesInFlight }}
- --client-values-per-second={{ .Values.serving.limits.clientValuesPerSecond }}
- --slice-rows={{ int .Values.serving.limits.sliceRows }}
- --retry-after={{ int .Values.serving.limits.retryAfterSeconds }}
- --cache-max-bytes={{ int .Values.serving.limits.cacheMaxBytes }}
- --selection-cache-bytes={{ int .Values.serving.limits.selectionCacheBytes }}
{{- if .Values.serving.auth.insecureNoAuth }}
- --insecure-no-auth
{{- else }}
- --auth-token-file=/var/run/streamguard/serving-auth/{{ .Values.serving.auth.tokenKey }}
{{- end }}
- --log-level={{ .Values.serving.logLevel }}
{{- end }}

{{/* The Secret of serving's bearer tokens: the one given, or the one the chart generates. */}}
{{- define "streamguard.servingAuthSecret" -}}
{{- default (printf "%s-auth" (include "streamguard.servingName" .)) .Values.serving.auth.existingSecret }}
{{- end }}
