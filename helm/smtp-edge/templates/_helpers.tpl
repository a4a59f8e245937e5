{{/*
Names, labels and small values shared by every template of the chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "smtp-edge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of every object: the release name, unless it does not contain the chart name.
`helm install smtp-edge helm/smtp-edge` gives "smtp-edge".
*/}}
{{- define "smtp-edge.fullname" -}}
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
{{- define "smtp-edge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "smtp-edge.labels" -}}
helm.sh/chart: {{ include "smtp-edge.chart" . }}
{{ include "smtp-edge.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cakemail-smtp-gateway
{{- end }}

{{/* The labels that select the pods (immutable on a Deployment: never add to them). */}}
{{- define "smtp-edge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smtp-edge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "smtp-edge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "smtp-edge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: a digest wins over a tag; the tag defaults to the chart's appVersion. */}}
{{- define "smtp-edge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The kubernetes.io/tls Secret holding tls.crt and tls.key. */}}
{{- define "smtp-edge.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "smtp-edge.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{/*
One environment value as a string. Helm reads every number in values as a float64, which would print large ones as
2.62144e+07: whole numbers are printed as integers.
*/}}
{{- define "smtp-edge.envValue" -}}
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
