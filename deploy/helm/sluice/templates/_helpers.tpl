{{/* The objects' name: the release's, or release-sluice when it does not say sluice. */}}
{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.headless" -}}
{{- include "sluice.fullname" . }}-headless
{{- end -}}

{{/* What selects this release's pods. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* ID@HOST:PORT of every pod, from their stable DNS names. */}}
{{- define "sluice.controllers" -}}
{{- $name := include "sluice.fullname" . -}}
{{- $headless := include "sluice.headless" . -}}
{{- $voters := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $voters = append $voters (printf "%d@%s-%d.%s:9093" $i $name $i $headless) -}}
{{- end -}}
{{- join "," $voters -}}
{{- end -}}
