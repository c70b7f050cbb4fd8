{{- define "pgcloak.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pgcloak.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pgcloak.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgcloak.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pgcloak.labels" -}}
{{ include "pgcloak.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "pgcloak.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pgcloak.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image, pinned: a digest, or a tag that is not "latest". */}}
{{- define "pgcloak.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else if or (eq $tag "latest") (eq $tag "") -}}
{{- fail "image.tag: pin a version (or set image.digest); \"latest\" is not allowed" -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Where the chart mounts what pgcloak reads. */}}
{{- define "pgcloak.paths" -}}
config: /etc/pgcloak
rules: /etc/pgcloak-rules
tls: /var/run/secrets/pgcloak/tls
upstreamCA: /var/run/secrets/pgcloak/upstream-ca
{{- end -}}

{{/* pgcloak.yaml: the user's config with the chart's addresses and paths. */}}
{{- define "pgcloak.config" -}}
{{- $p := include "pgcloak.paths" . | fromYaml -}}
{{- $set := dict "listen" (list (printf "0.0.0.0:%v" .Values.ports.postgres)) "admin" (printf "0.0.0.0:%v" .Values.ports.admin) "rules" (printf "%s/rules.yaml" $p.rules) "timeouts" (dict "shutdown_grace" (printf "%vs" .Values.shutdownGraceSeconds)) -}}
{{- if .Values.tls.secretName -}}
{{- $_ := set $set "tls" (dict "cert_file" (printf "%s/tls.crt" $p.tls) "key_file" (printf "%s/tls.key" $p.tls) "required" .Values.tls.required) -}}
{{- end -}}
{{- if .Values.upstreamTLS.caSecretName -}}
{{- $_ := set $set "upstream" (dict "tls" (dict "ca_file" (printf "%s/%s" $p.upstreamCA .Values.upstreamTLS.caKey))) -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $set) -}}
{{- end -}}
