{{/* The chart's name, or nameOverride. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object's name. */}}
{{- define "herald.fullname" -}}
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

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the keys: the chart's or secrets.existingSecret. */}}
{{- define "herald.secretName" -}}
{{- default (include "herald.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "herald.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" in PostgreSQL mode, "" in SQLite mode; fails on any other database.type. */}}
{{- define "herald.postgres" -}}
{{- if eq .Values.database.type "postgres" }}true
{{- else if ne .Values.database.type "sqlite" }}
{{- fail (printf "database.type %q: want sqlite or postgres" .Values.database.type) }}
{{- end }}
{{- end }}

{{/*
Checks the values that a template alone cannot make right, so that a mistake fails at install
rather than in a crash-looping pod.
*/}}
{{- define "herald.validate" -}}
{{- $pg := include "herald.postgres" . }}
{{- if not .Values.secrets.existingSecret }}
{{- $key := required "secrets.encryptionKey is required (base64 of 32 random bytes: openssl rand -base64 32), or set secrets.existingSecret" .Values.secrets.encryptionKey }}
{{- if ne (len (b64dec $key)) 32 }}
{{- fail "secrets.encryptionKey: want base64 of exactly 32 bytes (openssl rand -base64 32)" }}
{{- end }}
{{- if and .Values.secrets.adminApiKey (lt (len .Values.secrets.adminApiKey) 16) }}
{{- fail "secrets.adminApiKey: want at least 16 characters" }}
{{- end }}
{{- if $pg }}
{{- $url := required "database.url is required when database.type is postgres (or set secrets.existingSecret)" .Values.database.url }}
{{- if not (regexMatch "^postgres(ql)?://" $url) }}
{{- fail "database.url: want postgres://user:password@host:5432/database" }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (not $pg) .Values.database.url }}
{{- fail "database.url is set but database.type is sqlite: set database.type=postgres to use PostgreSQL" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if and $pg (lt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount: want at least 1" }}
{{- end }}
{{- range $name, $_ := .Values.config }}
{{- if has $name (list "addr" "data-dir" "database-url" "database-schema" "api-key" "no-metrics" "no-migrate" "encryption-key-file" "dev") }}
{{- fail (printf "config.%s: the chart sets this itself (see values.yaml); %s" $name (ternary "dev mode is for local development only" "use its own value" (eq $name "dev"))) }}
{{- end }}
{{- if not (regexMatch "^[a-z0-9]+(-[a-z0-9]+)*$" $name) }}
{{- fail (printf "config.%s: want a flag name of \"herald serve\" such as log-format" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The pod template of the StatefulSet (sqlite) and the Deployment (postgres). */}}
{{- define "herald.podTemplate" -}}
{{- $pg := include "herald.postgres" . -}}
metadata:
  labels:
    {{- include "herald.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not .Values.secrets.existingSecret }}
    checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "herald.serviceAccountName" . }}
  # Herald never talks to the Kubernetes API.
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: herald
      image: {{ include "herald.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      env:
        - name: HERALD_ADDR
          value: {{ printf ":%d" (int .Values.containerPort) | quote }}
        - name: HERALD_DATA_DIR
          value: /data
        - name: HERALD_ENCRYPTION_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "herald.secretName" . }}
              key: {{ .Values.secrets.keys.encryptionKey }}
        {{- if or .Values.secrets.existingSecret .Values.secrets.adminApiKey }}
        - name: HERALD_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "herald.secretName" . }}
              key: {{ .Values.secrets.keys.adminApiKey }}
              optional: {{ not (empty .Values.secrets.existingSecret) }}
        {{- end }}
        {{- if $pg }}
        - name: HERALD_DATABASE_URL
          valueFrom:
            secretKeyRef:
              name: {{ include "herald.secretName" . }}
              key: {{ .Values.secrets.keys.databaseUrl }}
        {{- with .Values.database.schema }}
        - name: HERALD_DATABASE_SCHEMA
          value: {{ . | quote }}
        {{- end }}
        {{- if not .Values.database.migrateOnStart }}
        - name: HERALD_NO_MIGRATE
          value: "true"
        {{- end }}
        {{- end }}
        {{- if not .Values.metrics.enabled }}
        - name: HERALD_NO_METRICS
          value: "true"
        {{- end }}
        {{- range $name, $value := .Values.config }}
        {{- if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value ""))) }}
        - name: {{ printf "HERALD_%s" ($name | upper | replace "-" "_") }}
          value: {{ ternary (join "," $value) (toString $value) (kindIs "slice" $value) | quote }}
        {{- end }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- if or $pg (not .Values.persistence.enabled) }}
    - name: data
      emptyDir:
        sizeLimit: 1Gi
    {{- else if .Values.persistence.existingClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
