{{- define "vigie-lib.pdb" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if $pdb.enabled }}
{{- if and (hasKey $pdb "minAvailable") (hasKey $pdb "maxUnavailable") }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "vigie-lib.fullname" . }}
  labels:
    {{- include "vigie-lib.labels" . | nindent 4 }}
spec:
  {{- if hasKey $pdb "minAvailable" }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable | default 1 }}
  {{- end }}
  # Let a drain evict pods that never became ready (a crash loop must not block node maintenance).
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "vigie-lib.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
