{{/* prometheus-operator's ServiceMonitor: scrape /metrics on the Service's `http` port. */}}
{{- define "vigie-lib.servicemonitor" -}}
{{- $sm := .Values.serviceMonitor -}}
{{- if $sm.enabled }}
{{- if not .Values.service.enabled }}
{{- fail "serviceMonitor.enabled needs service.enabled: a ServiceMonitor selects a Service" }}
{{- end }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "vigie-lib.fullname" . }}
  labels:
    {{- include "vigie-lib.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: app.kubernetes.io/name
  selector:
    matchLabels:
      {{- include "vigie-lib.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ .Release.Namespace }}
  endpoints:
    - port: http
      path: {{ $sm.path }}
      scheme: http
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
      honorLabels: false
      {{- with $sm.metricRelabelings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end -}}
