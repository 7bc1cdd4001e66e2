{{/* Names, labels and the pieces every workload shares. */}}

{{- define "kafka-backup.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kafka-backup.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kafka-backup.labels" -}}
{{ include "kafka-backup.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kafka-backup.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kafka-backup.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A workload's config file: the user's config with the chart's mode, continuity and metrics
     endpoint. Arguments: (list $ config mode continuous). */}}
{{- define "kafka-backup.configFile" -}}
{{- $root := index . 0 -}}
{{- $config := deepCopy (index . 1) -}}
{{- $_ := set $config "mode" (index . 2) -}}
{{- if eq (index . 2) "backup" -}}
{{- $backup := default (dict) (get $config "backup") -}}
{{- $_ := set $backup "continuous" (index . 3) -}}
{{- if and (index . 3) $root.Values.backup.continuous.groupId -}}
{{- $_ := set $backup "group_id" $root.Values.backup.continuous.groupId -}}
{{- end -}}
{{- $_ := set $config "backup" $backup -}}
{{- end -}}
{{- if and (eq (index . 2) "restore") $root.Values.restore.groupId -}}
{{- $restore := default (dict) (get $config "restore") -}}
{{- $_ := set $restore "group_id" $root.Values.restore.groupId -}}
{{- $_ := set $config "restore" $restore -}}
{{- end -}}
{{- $_ := set $config "metrics" (dict "listen" (printf "0.0.0.0:%d" (int $root.Values.metrics.port))) -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The pod template of every workload. Arguments: (list $ component command configFile probes). */}}
{{- define "kafka-backup.pod" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := $root.Values -}}
metadata:
  labels:
    {{- include "kafka-backup.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- if $values.metrics.annotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $values.metrics.port | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "kafka-backup.serviceAccountName" $root }}
  {{- with $values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
  {{- if ne $component "continuous" }}
  restartPolicy: Never
  {{- end }}
  containers:
    - name: kafka-backup
      image: "{{ $values.image.repository }}:{{ $values.image.tag | default $root.Chart.AppVersion }}"
      imagePullPolicy: {{ $values.image.pullPolicy }}
      args: ["--log-format", "json", {{ index . 2 | quote }}, "--config", "/etc/kafka-backup/{{ index . 3 }}"]
      ports:
        - name: metrics
          containerPort: {{ $values.metrics.port }}
          protocol: TCP
      {{- if index . 4 }}
      livenessProbe:
        httpGet:
          path: /health
          port: metrics
        periodSeconds: 10
        failureThreshold: 6
      readinessProbe:
        httpGet:
          path: /ready
          port: metrics
        periodSeconds: 5
      {{- end }}
      {{- with $values.env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.envFromSecrets }}
      envFrom:
        {{- range . }}
        - secretRef:
            name: {{ . }}
        {{- end }}
      {{- end }}
      resources:
        {{- toYaml $values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/kafka-backup
          readOnly: true
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "kafka-backup.fullname" $root }}
    - name: data
      {{- if $values.persistence.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ $values.persistence.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: tmp
      emptyDir: {}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
