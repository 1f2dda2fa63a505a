{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "dfp.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name. */}}
{{- define "dfp.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Name of a component's objects: <fullname>-<component>. Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "dfp.componentName" -}}
{{- printf "%s-%s" (include "dfp.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: the minimal, immutable set. */}}
{{- define "dfp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dfp.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every label. */}}
{{- define "dfp.labels" -}}
{{ include "dfp.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: dfp
{{- end }}

{{/* One image per service, built from docker/{name}.Dockerfile: {repository}-{name}:{tag}. */}}
{{- define "dfp.image" -}}
{{- printf "%s-%s:%s" .ctx.Values.image.repository .name (default .ctx.Chart.AppVersion .ctx.Values.image.tag) }}
{{- end }}

{{- define "dfp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dfp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dfp.s3SecretName" -}}
{{- default (include "dfp.componentName" (dict "ctx" . "component" "s3")) .Values.storage.existingSecret }}
{{- end }}

{{/* The S3 settings every container of the platform reads (see dfp/config.py). */}}
{{- define "dfp.s3Env" -}}
- name: DFP_S3_ENDPOINT
  value: {{ ternary (printf "%s:9000" (include "dfp.componentName" (dict "ctx" . "component" "minio"))) .Values.storage.external.endpoint (eq .Values.storage.mode "minio") | quote }}
- name: DFP_S3_SECURE
  value: {{ ternary "false" (toString .Values.storage.external.secure) (eq .Values.storage.mode "minio") | quote }}
- name: DFP_S3_REGION
  value: {{ .Values.storage.external.region | quote }}
- name: DFP_BUCKET_PREFIX
  value: {{ .Values.storage.bucketPrefix | quote }}
- name: DFP_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "dfp.s3SecretName" . }}
      key: accessKey
- name: DFP_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "dfp.s3SecretName" . }}
      key: secretKey
{{- end }}

{{/* Where a container finds the internal mutual-TLS certificates (internalTls.secretName), as DFP_MTLS_*. */}}
{{- define "dfp.mtlsEnv" -}}
- name: DFP_MTLS_CA
  value: /etc/dfp/mtls/ca.crt
- name: DFP_MTLS_CERT
  value: /etc/dfp/mtls/tls.crt
- name: DFP_MTLS_KEY
  value: /etc/dfp/mtls/tls.key
{{- end }}

{{/* The pod volume holding the internalTls Secret (mounted at /etc/dfp/mtls where it is read). */}}
{{- define "dfp.mtlsVolume" -}}
- name: mtls
  secret:
    secretName: {{ .Values.internalTls.secretName | quote }}
    defaultMode: 0400
{{- end }}

{{/* HorizontalPodAutoscaler and PodDisruptionBudget for a component. Call with (dict "ctx" $ "component" "gateway" "values" .Values.gateway). */}}
{{- define "dfp.scaling" -}}
{{- if .values.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "dfp.componentName" . }}
  labels:
    {{- include "dfp.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "dfp.componentName" . }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if .values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "dfp.componentName" . }}
  labels:
    {{- include "dfp.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .values.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "dfp.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
