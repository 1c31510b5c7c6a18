{{/*
Default deny, then: ingress only to the `http` port, from the listed namespaces and pods (Prometheus
included); egress only to DNS and to the listed backends. A backend with an empty `to` is reachable on
its ports at any address, for servers outside the cluster (managed Kafka, Atlas, ...) whose addresses
are not known to the chart; give `to` (NetworkPolicyPeers: ipBlock, namespaceSelector, podSelector)
to narrow it.
*/}}
{{- define "vigie-lib.networkpolicy" -}}
{{- $np := .Values.networkPolicy -}}
{{- if $np.enabled }}
{{- $in := $np.ingress -}}
{{- $eg := $np.egress -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "vigie-lib.fullname" . }}
  labels:
    {{- include "vigie-lib.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "vigie-lib.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  {{- /* A rule without `from` would admit every source, so no sources means no ingress rule. */}}
  {{- if or $in.sameNamespace $in.namespaces $in.pods }}
  ingress:
    - ports:
        - port: http
          protocol: TCP
      from:
        {{- if $in.sameNamespace }}
        - podSelector: {}
        {{- end }}
        {{- range $in.namespaces }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ . }}
        {{- end }}
        {{- range $in.pods }}
        - podSelector:
            matchLabels:
              {{- toYaml . | nindent 14 }}
        {{- end }}
  {{- else }}
  ingress: []
  {{- end }}
  egress:
    {{- if $eg.dns }}
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: kube-system
          podSelector:
            matchLabels:
              k8s-app: kube-dns
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- end }}
    {{- range $name, $target := $eg.targets }}
    {{- if $target.enabled }}
    # {{ $name }}
    - ports:
        {{- range $target.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $target.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- end }}
    {{- with $eg.extra }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end -}}
