{{- define "neptune.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "neptune.commonLabels" -}}
app.kubernetes.io/part-of: neptune
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "neptune.labels" -}}
{{ include "neptune.commonLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The operator's pods: app NetworkPolicies admit exactly this name to read /status. */}}
{{- define "neptune.operatorSelector" -}}
app.kubernetes.io/name: neptune-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "neptune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "neptune.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "neptune.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The `restricted` Pod Security Standard, for the operator pod. */}}
{{- define "neptune.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "neptune.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* {"name": minAppPriority} for the operator (NEPTUNE_PRIORITY_CLASSES). */}}
{{- define "neptune.classesJson" -}}
{{- $out := dict -}}
{{- range .Values.priorityClasses.classes -}}
{{- $_ := set $out .name (int .minAppPriority) -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}

{{- /* What the operator does to apps and their children, nothing more. */}}
{{- define "neptune.appRules" }}
- apiGroups: ["neptune.dev"]
  resources: ["continuousapplications"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["neptune.dev"]
  resources: ["continuousapplications/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["configmaps", "services", "persistentvolumeclaims"]
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]  # the app's own, for the scheduler's reason when they stay Pending
- apiGroups: [""]
  resources: ["pods/resize"]
  verbs: ["patch"]  # executors' CPU requests by priority level, in place
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
