{{/*
HorizontalPodAutoscaler (autoscaling/v2) on CPU and/or Kafka consumer lag. The lag metric comes from
a metrics adapter (prometheus-adapter or KEDA's) exposing kafka-exporter's `kafka_consumergroup_lag`:
as an External metric selected by consumer group (the usual setup), or as a Pods metric.
A consumer group cannot use more pods than its topic has partitions: keep maxReplicas <= partitions.
*/}}
{{- define "vigie-lib.hpa" -}}
{{- $as := .Values.autoscaling -}}
{{- if $as.enabled }}
{{- if not (or $as.cpu.enabled $as.kafkaLag.enabled) }}
{{- fail "autoscaling.enabled needs autoscaling.cpu.enabled or autoscaling.kafkaLag.enabled" }}
{{- end }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "vigie-lib.fullname" . }}
  labels:
    {{- include "vigie-lib.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "vigie-lib.fullname" . }}
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    {{- if $as.cpu.enabled }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $as.cpu.averageUtilization }}
    {{- end }}
    {{- with $as.kafkaLag }}
    {{- if .enabled }}
    {{- if eq .type "External" }}
    - type: External
      external:
        metric:
          name: {{ .metricName }}
          {{- with .selector }}
          selector:
            matchLabels:
              {{- toYaml . | nindent 14 }}
          {{- end }}
        target:
          # Lag summed over the group's partitions, divided by the number of pods.
          type: AverageValue
          averageValue: {{ .averageValue | toString | quote }}
    {{- else }}
    - type: Pods
      pods:
        metric:
          name: {{ .metricName }}
          {{- with .selector }}
          selector:
            matchLabels:
              {{- toYaml . | nindent 14 }}
          {{- end }}
        target:
          type: AverageValue
          averageValue: {{ .averageValue | toString | quote }}
    {{- end }}
    {{- end }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
