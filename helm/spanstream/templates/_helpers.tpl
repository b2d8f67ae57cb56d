{{- define "spanstream.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spanstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "spanstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "spanstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "spanstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spanstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "spanstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spanstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Settings that cannot be checked one value at a time: refuse to render them. */}}
{{- define "spanstream.validate" -}}
{{- if and .Values.keda.enabled .Values.autoscaling.enabled -}}
{{- fail "keda.enabled and autoscaling.enabled both scale the Deployment: enable one" -}}
{{- end -}}
{{- if and .Values.keda.enabled (eq .Values.mode "serve") -}}
{{- fail "keda scales on consumer lag: it needs mode: worker or sink (use autoscaling for serve)" -}}
{{- end -}}
{{- if gt (int .Values.keda.maxReplicas) (int .Values.keda.partitions) -}}
{{- fail (printf "keda.maxReplicas (%d) exceeds keda.partitions (%d): replicas beyond the partition count sit idle" (int .Values.keda.maxReplicas) (int .Values.keda.partitions)) -}}
{{- end -}}
{{- if gt (int .Values.keda.minReplicas) (int .Values.keda.maxReplicas) -}}
{{- fail "keda.minReplicas exceeds keda.maxReplicas" -}}
{{- end -}}
{{- end -}}
