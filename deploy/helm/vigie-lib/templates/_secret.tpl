{{/*
`secrets:` (env var name -> string) becomes the chart's own Secret, unless `existingSecret` names one
managed elsewhere (External Secrets, Sealed Secrets, Vault...), which is what production should use.
*/}}
{{- define "vigie-lib.secret" -}}
{{- if and .Values.secrets (not .Values.existingSecret) }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "vigie-lib.secretName" . }}
  labels:
    {{- include "vigie-lib.labels" . | nindent 4 }}
type: Opaque
data:
  {{- range $key, $value := .Values.secrets }}
  {{ $key }}: {{ $value | toString | b64enc | quote }}
  {{- end }}
{{- end }}
{{- end -}}
