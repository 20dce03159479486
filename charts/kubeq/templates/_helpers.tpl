{{/* Chart name. */}}
{{- define "kubeq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "kubeq.fullname" -}}
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

{{- define "kubeq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release, without a component. */}}
{{- define "kubeq.commonLabels" -}}
helm.sh/chart: {{ include "kubeq.chart" . }}
app.kubernetes.io/name: {{ include "kubeq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "kubeq.labels" -}}
{{ include "kubeq.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Selector labels of the operator. */}}
{{- define "kubeq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kubeq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubeq.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubeq.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespaces the operator serves in namespaced scope. */}}
{{- define "kubeq.namespaces" -}}
{{- if .Values.rbac.namespaces }}{{ join "," .Values.rbac.namespaces }}{{ else }}{{ .Release.Namespace }}{{ end }}
{{- end }}

{{/* The RBAC rules on namespaced objects (shared by the ClusterRole and the per-namespace Roles). */}}
{{- define "kubeq.namespacedRules" -}}
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [kubeq.dev]
  resources: [taskqueues]
  verbs: [get, list, watch, patch, update]
- apiGroups: [kubeq.dev]
  resources: [taskqueues/status]
  verbs: [get, patch, update]
# delete: a versioned rollout removes an old version's Deployment once it is drained
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, patch]
# Job-mode pools: one Job per job; delete only replaces Jobs whose pods never started
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, create, delete]
{{- if .Values.operator.peering }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings, kopfpeerings/status]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}

{{/* Namespaces where the operator may read Secrets (the Redis passwords of spec.redis.secretRef). */}}
{{- define "kubeq.secretNamespaces" -}}
{{- if .Values.rbac.secretNamespaces }}{{ join "," .Values.rbac.secretNamespaces }}
{{- else if eq .Values.rbac.scope "namespaced" }}{{ include "kubeq.namespaces" . }}
{{- else }}{{ .Release.Namespace }}{{ end }}
{{- end }}

{{/* The one Secret rule: get only, limited to rbac.secretNames when set. */}}
{{- define "kubeq.secretRule" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
  {{- with .Values.rbac.secretNames }}
  resourceNames:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The operator's user name, as the API server sees it (the pod-patch policy matches it). */}}
{{- define "kubeq.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "kubeq.serviceAccountName" . }}
{{- end }}
