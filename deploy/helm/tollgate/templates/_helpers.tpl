{{/*
Chart name, truncated to the 63 characters a label allows.
*/}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: "<release>-<chart>", or the release name when it already contains the chart name.
Truncated so that "-gateway"/"-migrations" suffixes still fit in 63 characters.
*/}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "gateway").
*/}}
{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Common labels of one component. Call with (dict "ctx" $ "component" "gateway").
*/}}
{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" .ctx }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tollgate
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tollgate.secretName" -}}
{{- default (include "tollgate.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "tollgate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
TOLLGATE_PUBLIC_URL: config.publicUrl, else the first ingress host, else empty (unset).
*/}}
{{- define "tollgate.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := (first .Values.ingress.hosts).host }}
{{- $scheme := "http" }}
{{- range .Values.ingress.tls }}
{{- if has $host .hosts }}{{ $scheme = "https" }}{{ end }}
{{- end }}
{{- printf "%s://%s" $scheme $host }}
{{- end }}
{{- end }}

{{/*
Checks that fail the render with a message naming the value.
*/}}
{{- define "tollgate.validate" -}}
{{- if not .Values.secrets.keys.databaseUrl }}
{{- fail "secrets.keys.databaseUrl must name the key holding TOLLGATE_DATABASE_URL" }}
{{- end }}
{{- if and (not .Values.secrets.keys.redisUrl) (or .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.replicas) 1)) }}
{{- fail "more than one gateway replica (gateway.replicas > 1 or gateway.autoscaling.enabled) needs Redis: set secrets.keys.redisUrl" }}
{{- end }}
{{- if .Values.secrets.create }}
{{- if .Values.secrets.existingSecret }}
{{- fail "secrets.create and secrets.existingSecret are exclusive: the chart creates its Secret under the release's full name" }}
{{- end }}
{{- if not .Values.secrets.values.databaseUrl }}
{{- fail "secrets.create=true needs secrets.values.databaseUrl" }}
{{- end }}
{{- if and .Values.secrets.keys.redisUrl (not .Values.secrets.values.redisUrl) }}
{{- fail "secrets.create=true needs secrets.values.redisUrl (or secrets.keys.redisUrl=\"\" to run without Redis)" }}
{{- end }}
{{- if and .Values.secrets.keys.masterKey (not .Values.secrets.values.masterKey) }}
{{- fail "secrets.create=true needs secrets.values.masterKey (head -c 32 /dev/urandom | base64)" }}
{{- end }}
{{- if and .Values.secrets.keys.adminToken (lt (len .Values.secrets.values.adminToken) 16) }}
{{- fail "secrets.create=true needs secrets.values.adminToken of at least 16 characters" }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if and .Values.tls.clientCa.enabled (not (or .Values.tls.enabled .Values.config.clientCertHeader)) }}
{{- fail "tls.clientCa.enabled needs tls.enabled or config.clientCertHeader: otherwise no client certificate can arrive" }}
{{- end }}
{{- if and .Values.tls.clientCa.enabled (not (or .Values.tls.clientCa.existingSecret .Values.tls.existingSecret)) }}
{{- fail "tls.clientCa.enabled needs tls.clientCa.existingSecret (or tls.existingSecret) holding the CA bundle" }}
{{- end }}
{{- if and .Values.config.clientCertHeader (not .Values.config.trustedProxies) }}
{{- fail "config.clientCertHeader needs config.trustedProxies: the header is believed only from those addresses" }}
{{- end }}
{{- if and .Values.config.clientCertHeader (not .Values.tls.clientCa.enabled) }}
{{- fail "config.clientCertHeader needs tls.clientCa.enabled: a proxied certificate is checked against the CA bundle" }}
{{- end }}
{{- if and .Values.gateway.autoscaling.enabled (lt (int .Values.gateway.autoscaling.maxReplicas) (int .Values.gateway.autoscaling.minReplicas)) }}
{{- fail "gateway.autoscaling.maxReplicas must be at least gateway.autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.gateway.autoscaling.enabled (not (or .Values.gateway.autoscaling.targetCPUUtilizationPercentage .Values.gateway.autoscaling.targetMemoryUtilizationPercentage)) }}
{{- fail "gateway.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- end }}

{{/*
Environment shared by the gateway, the admin API and the migration Job: database, master key,
logging, extraEnv. Call with the root context.
*/}}
{{- define "tollgate.commonEnv" -}}
- name: TOLLGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tollgate.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
{{- if .Values.secrets.keys.masterKey }}
- name: TOLLGATE_MASTER_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tollgate.secretName" . }}
      key: {{ .Values.secrets.keys.masterKey }}
{{- end }}
- name: TOLLGATE_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.config.rustLog | quote }}
{{- end }}

{{/*
Environment of both `serve` Deployments. Call with the root context.
*/}}
{{- define "tollgate.serveEnv" -}}
{{ include "tollgate.commonEnv" . }}
{{- if .Values.secrets.keys.redisUrl }}
- name: TOLLGATE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tollgate.secretName" . }}
      key: {{ .Values.secrets.keys.redisUrl }}
{{- end }}
{{- with (include "tollgate.publicUrl" .) }}
- name: TOLLGATE_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
- name: TOLLGATE_CACHE_TTL
  value: {{ .Values.config.cacheTtl | quote }}
- name: TOLLGATE_CODE_TTL
  value: {{ .Values.config.codeTtl | quote }}
- name: TOLLGATE_SESSION_TTL
  value: {{ .Values.config.sessionTtl | quote }}
- name: TOLLGATE_SHUTDOWN_TIMEOUT
  value: {{ .Values.config.shutdownTimeout | quote }}
{{- with .Values.config.ceilings }}
- name: TOLLGATE_MAX_ACCESS_TOKEN_TTL
  value: {{ .maxAccessTokenTtl | quote }}
- name: TOLLGATE_MAX_REFRESH_TOKEN_TTL
  value: {{ .maxRefreshTokenTtl | quote }}
- name: TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND_MAX
  value: {{ .rateLimitClientPerSecondMax | quote }}
- name: TOLLGATE_RATE_LIMIT_CLIENT_BURST_MAX
  value: {{ .rateLimitClientBurstMax | quote }}
- name: TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND_MAX
  value: {{ .rateLimitAddressPerSecondMax | quote }}
- name: TOLLGATE_RATE_LIMIT_ADDRESS_BURST_MAX
  value: {{ .rateLimitAddressBurstMax | quote }}
- name: TOLLGATE_SHORT_LIVED_TENANT_ENTRIES
  value: {{ .shortLivedTenantEntries | quote }}
- name: TOLLGATE_SHORT_LIVED_SERVER_ENTRIES
  value: {{ .shortLivedServerEntries | quote }}
{{- end }}
{{- end }}

{{/*
Pod scheduling for a component. Call with (dict "ctx" $ "component" "gateway" "values" .Values.gateway).
*/}}
{{- define "tollgate.scheduling" -}}
{{- $v := .values }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if eq $v.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "tollgate.selectorLabels" . | nindent 14 }}
{{- else if eq $v.podAntiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "tollgate.selectorLabels" . | nindent 12 }}
{{- end }}
{{- if kindIs "invalid" $v.topologySpreadConstraints }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "tollgate.selectorLabels" . | nindent 8 }}
{{- else if $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $v.topologySpreadConstraints | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/*
Pod-level fields shared by every pod: service account, pull secrets, security context.
*/}}
{{- define "tollgate.podCommon" -}}
serviceAccountName: {{ include "tollgate.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Probes of a `serve` container. Call with (dict "port" "http" "scheme" "HTTP" "values" .Values.gateway).
*/}}
{{- define "tollgate.probes" -}}
{{- $l := .values.livenessProbe }}
{{- $r := .values.readinessProbe }}
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
    scheme: {{ .scheme }}
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 90
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
    scheme: {{ .scheme }}
  initialDelaySeconds: {{ $l.initialDelaySeconds }}
  periodSeconds: {{ $l.periodSeconds }}
  timeoutSeconds: {{ $l.timeoutSeconds }}
  failureThreshold: {{ $l.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
    scheme: {{ .scheme }}
  initialDelaySeconds: {{ $r.initialDelaySeconds }}
  periodSeconds: {{ $r.periodSeconds }}
  timeoutSeconds: {{ $r.timeoutSeconds }}
  failureThreshold: {{ $r.failureThreshold }}
{{- end }}

{{/*
preStop sleep and the grace period that covers it plus the drain. Pod-level part.
*/}}
{{- define "tollgate.gracePeriod" -}}
terminationGracePeriodSeconds: {{ add (int .ctx.Values.config.shutdownTimeout) (int .values.preStopSleepSeconds) 5 }}
{{- end }}

{{- define "tollgate.lifecycle" -}}
{{- if gt (int .preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ int .preStopSleepSeconds }}
{{- end }}
{{- end }}
