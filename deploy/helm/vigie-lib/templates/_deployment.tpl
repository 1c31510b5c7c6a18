{{/*
The Deployment of a vigie service: one container serving its REST API, /health/live, /health/ready
and /metrics on the `http` port. The security context is not configurable on purpose: every vigie
service runs as a non-root user on a read-only root filesystem with no capabilities; /tmp is an emptyDir.
*/}}
{{- define "vigie-lib.deployment" -}}
{{- $probes := .Values.probes -}}
{{- /* A changed ConfigMap/Secret must restart the pods: env vars are read only at start. */}}
{{- $annotations := dict -}}
{{- if .Values.config }}
{{- $_ := set $annotations "checksum/config" (include "vigie-lib.configmap" . | sha256sum) }}
{{- end }}
{{- if and .Values.secrets (not .Values.existingSecret) }}
{{- $_ := set $annotations "checksum/secret" (include "vigie-lib.secret" . | sha256sum) }}
{{- end }}
{{- $annotations = merge $annotations (.Values.podAnnotations | default dict) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "vigie-lib.fullname" . }}
  labels:
    {{- include "vigie-lib.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Consumers rebalance on every pod change: add the new pod before removing an old one.
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "vigie-lib.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      {{- with $annotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      labels:
        {{- include "vigie-lib.labels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "vigie-lib.serviceAccountName" . }}
      automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ .Values.podSecurity.runAsUser }}
        runAsGroup: {{ .Values.podSecurity.runAsGroup }}
        fsGroup: {{ .Values.podSecurity.fsGroup }}
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ include "vigie-lib.name" . }}
          image: {{ include "vigie-lib.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          {{- with .Values.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ .Values.http.port }}
              protocol: TCP
          {{- if or .Values.config (include "vigie-lib.hasSecret" .) }}
          envFrom:
            {{- if .Values.config }}
            - configMapRef:
                name: {{ include "vigie-lib.configName" . }}
            {{- end }}
            {{- if include "vigie-lib.hasSecret" . }}
            - secretRef:
                name: {{ include "vigie-lib.secretName" . }}
            {{- end }}
          {{- end }}
          {{- with .Values.env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- if $probes.startup.enabled }}
          startupProbe:
            httpGet:
              path: {{ $probes.liveness.path }}
              port: http
            periodSeconds: {{ $probes.startup.periodSeconds }}
            failureThreshold: {{ $probes.startup.failureThreshold }}
          {{- end }}
          livenessProbe:
            httpGet:
              path: {{ $probes.liveness.path }}
              port: http
            initialDelaySeconds: {{ $probes.liveness.initialDelaySeconds }}
            periodSeconds: {{ $probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: {{ $probes.readiness.path }}
              port: http
            initialDelaySeconds: {{ $probes.readiness.initialDelaySeconds }}
            periodSeconds: {{ $probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $probes.readiness.failureThreshold }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            runAsNonRoot: true
            runAsUser: {{ .Values.podSecurity.runAsUser }}
            allowPrivilegeEscalation: false
            privileged: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSizeLimit | quote }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.topologySpread }}
      topologySpreadConstraints:
        {{- range . }}
        - maxSkew: {{ .maxSkew | default 1 }}
          topologyKey: {{ .topologyKey }}
          whenUnsatisfiable: {{ .whenUnsatisfiable | default "ScheduleAnyway" }}
          labelSelector:
            matchLabels:
              {{- include "vigie-lib.selectorLabels" $ | nindent 14 }}
        {{- end }}
      {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
