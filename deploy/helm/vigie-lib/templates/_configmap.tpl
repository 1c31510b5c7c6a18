{{/* `config:` (env var name -> string) becomes a ConfigMap the container reads with envFrom. */}}
{{- define "vigie-lib.configmap" -}}
{{- if .Values.config }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "vigie-lib.configName" . }}
  labels:
    {{- include "vigie-lib.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.config }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}
{{- end }}
{{- end -}}
