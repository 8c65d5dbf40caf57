{{/* Arguments of `streamguard operator run` (the container's entrypoint is `streamguard`). */}}
{{- define "streamguard.operatorArgs" -}}
- operator
- run
{{- $watched := include "streamguard.watchedNamespaces" . | fromJsonArray }}
{{- if $watched }}
{{- range $watched }}
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
- name: STREAMGUARD_OPERATOR_REDIS_CA_KEY
  value: {{ .Values.connections.redis.caKey | quote }}
- name: STREAMGUARD_OPERATOR_CHECKPOINT_STORAGE
  value: {{ .Values.workloads.checkpointStorage | quote }}
- name: STREAMGUARD_OPERATOR_CHECKPOINT_STORAGE_CLASS
  value: {{ .Values.workloads.checkpointStorageClass | quote }}
- name: STREAMGUARD_OPERATOR_WORKERS
  value: {{ .Values.operator.workers | quote }}
{{- include "streamguard.clientSecurityEnv" . }}
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

{{/* Kafka and registry security (streamguard.clientsecurity): the Secret names the operator hands to the
streaming jobs, and the operator's own credentials from the same Secrets (by reference, certificates as files). */}}
{{- define "streamguard.clientSecurityEnv" -}}
{{- $kafka := .Values.connections.kafka }}
{{- $registry := .Values.connections.schemaRegistry }}
- name: STREAMGUARD_OPERATOR_KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol | default "PLAINTEXT" | quote }}
- name: STREAMGUARD_OPERATOR_KAFKA_SASL_MECHANISM
  value: {{ $kafka.saslMechanism | default "SCRAM-SHA-512" | quote }}
{{- range $setting, $secret := dict "KAFKA_CREDENTIALS_SECRET" $kafka.credentialsSecret "KAFKA_CA_SECRET" $kafka.caSecret "REGISTRY_CA_SECRET" $registry.caSecret "REGISTRY_CLIENT_CERT_SECRET" $registry.clientCertSecret "REGISTRY_CREDENTIALS_SECRET" $registry.credentialsSecret }}
{{- with $secret }}
- name: STREAMGUARD_OPERATOR_{{ $setting }}
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $kafka.credentialsSecret }}
- name: STREAMGUARD_KAFKA_SASL_USERNAME
  valueFrom: {secretKeyRef: {name: {{ . | quote }}, key: username}}
- name: STREAMGUARD_KAFKA_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ . | quote }}, key: password}}
{{- end }}
{{- if $kafka.caSecret }}
- name: STREAMGUARD_KAFKA_CA_FILE
  value: /etc/streamguard/secrets/kafka-ca/ca.crt
{{- end }}
{{- if $registry.caSecret }}
- name: STREAMGUARD_REGISTRY_CA_FILE
  value: /etc/streamguard/secrets/registry-ca/ca.crt
{{- end }}
{{- if $registry.clientCertSecret }}
- name: STREAMGUARD_REGISTRY_CERT_FILE
  value: /etc/streamguard/secrets/registry-client/tls.crt
- name: STREAMGUARD_REGISTRY_KEY_FILE
  value: /etc/streamguard/secrets/registry-client/tls.key
{{- end }}
{{- with $registry.credentialsSecret }}
- name: STREAMGUARD_REGISTRY_USERNAME
  valueFrom: {secretKeyRef: {name: {{ . | quote }}, key: username}}
- name: STREAMGUARD_REGISTRY_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ . | quote }}, key: password}}
{{- end }}
{{- end }}

{{/* The operator's read-only Secret volumes for the certificates above: "mounts" or "volumes". */}}
{{- define "streamguard.clientSecurityFiles" -}}
{{- $root := index . 0 }}
{{- $part := index . 1 }}
{{- range $volume, $secret := dict "kafka-ca" $root.Values.connections.kafka.caSecret "registry-ca" $root.Values.connections.schemaRegistry.caSecret "registry-client" $root.Values.connections.schemaRegistry.clientCertSecret }}
{{- if $secret }}
{{- if eq $part "mounts" }}
- name: {{ $volume }}
  mountPath: /etc/streamguard/secrets/{{ $volume }}
  readOnly: true
{{- else }}
- name: {{ $volume }}
  secret:
    secretName: {{ $secret | quote }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end }}
{{- end }}
