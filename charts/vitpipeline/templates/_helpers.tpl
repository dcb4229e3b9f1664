{{/*
Names and labels shared by every template. All defines are prefixed "vitpipeline." so they
cannot clash with a parent or dependency chart's defines.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "vitpipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name: fullnameOverride, else "<release>-<name>", else the release
name alone when it already contains the chart name. Kept within 63 characters (a DNS label).
*/}}
{{- define "vitpipeline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "vitpipeline.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label ("+" is not allowed in label values). */}}
{{- define "vitpipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels that select the operator pod; never change them on upgrade. */}}
{{- define "vitpipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vitpipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The labels on every resource the chart makes. */}}
{{- define "vitpipeline.labels" -}}
helm.sh/chart: {{ include "vitpipeline.chart" . }}
{{ include "vitpipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vitpipeline
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "vitpipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vitpipeline.fullname" .) .Values.serviceAccount.name -}}
{{- else if .Values.serviceAccount.name -}}
{{- .Values.serviceAccount.name -}}
{{- else -}}
{{- fail "serviceAccount.name: required when serviceAccount.create is false (name the existing ServiceAccount)" -}}
{{- end -}}
{{- end -}}

{{/*
The operator image, pinned: the digest when set, else the tag (default: the chart's appVersion).
*/}}
{{- define "vitpipeline.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag: \"latest\" is not allowed; pin a version tag or set image.digest" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
RBAC rules, which must equal operator/vitoperator/rbac.py (tests/chart/test_chart.py compares
them). clusterRules: what kopf reads cluster-wide in every mode.
*/}}
{{- define "vitpipeline.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* namespacedRules: what the operator does to ViTPipelines, RayJobs and Events it serves. */}}
{{- define "vitpipeline.namespacedRules" -}}
- apiGroups: ["vitpipeline.dev"]
  resources: ["vitpipelines"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["vitpipeline.dev"]
  resources: ["vitpipelines/status"]
  verbs: ["get", "patch"]
- apiGroups: ["vitpipeline.dev"]
  resources: ["vitpipelines/finalizers"]
  verbs: ["update"]
- apiGroups: ["ray.io"]
  resources: ["rayjobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["ray.io"]
  resources: ["rayclusters"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
