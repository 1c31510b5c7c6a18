{{/*
Everything a vigie service needs, each object rendered only when its values enable it.
A service chart's whole templates/ can be: {{ include "vigie-lib.all" . }}
Charts that need to add or replace an object include the individual templates instead.
*/}}
{{- define "vigie-lib.all" -}}
{{- $parts := list "vigie-lib.serviceaccount" "vigie-lib.configmap" "vigie-lib.secret" "vigie-lib.deployment" "vigie-lib.service" "vigie-lib.hpa" "vigie-lib.pdb" "vigie-lib.servicemonitor" "vigie-lib.networkpolicy" -}}
{{- range $parts }}
{{- $out := include . $ -}}
{{- if trim $out }}
---
{{ trim $out }}
{{- end }}
{{- end }}
{{- end -}}
