{{/*
Names, labels and small values shared by every template of the chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "forwarder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of every object: the release name, unless it does not contain the chart name.
`helm install forwarder helm/forwarder` gives "forwarder", the name the edge dials.
*/}}
{{- define "forwarder.fullname" -}}
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

{{/* The chart label value: name-version. */}}
{{- define "forwarder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "forwarder.labels" -}}
helm.sh/chart: {{ include "forwarder.chart" . }}
{{ include "forwarder.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cakemail-smtp-gateway
{{- end }}

{{/* The labels that select the pods (immutable on a Deployment: never add to them). */}}
{{- define "forwarder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forwarder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "forwarder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "forwarder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: a digest wins over a tag; the tag defaults to the chart's appVersion. */}}
{{- define "forwarder.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
One environment value as a string. Helm reads every number in values as a float64, which would print large ones as
2.62144e+07: whole numbers are printed as integers.
*/}}
{{- define "forwarder.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq . (float64 (int64 .)) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}
