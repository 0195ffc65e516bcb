{{/* Chart name, at most 63 characters. */}}
{{- define "sourcebuild-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, at most 63 characters (a DNS label). When the release name already
contains the chart name, it is used as is.
*/}}
{{- define "sourcebuild-operator.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "sourcebuild-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "sourcebuild-operator.labels" -}}
helm.sh/chart: {{ include "sourcebuild-operator.chart" . }}
{{ include "sourcebuild-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sourcebuild-operator
{{- end }}

{{/* Labels the Deployment selects its Pods by and the Service selects endpoints by. */}}
{{- define "sourcebuild-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sourcebuild-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Name of the ServiceAccount the controller runs as. */}}
{{- define "sourcebuild-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sourcebuild-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the tag defaults to $default. */}}
{{- define "sourcebuild-operator.imageRef" -}}
{{- $ref := printf "%s:%s" .image.repository (.image.tag | default .default) }}
{{- if .image.digest }}
{{- $ref = printf "%s@%s" $ref .image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* The operator image. */}}
{{- define "sourcebuild-operator.image" -}}
{{- include "sourcebuild-operator.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) }}
{{- end }}

{{/* The image of build Pods' prepare init container: the operator image unless overridden. */}}
{{- define "sourcebuild-operator.prepareImage" -}}
{{- .Values.prepareImage | default (include "sourcebuild-operator.image" .) }}
{{- end }}

{{/* The Kaniko executor image. */}}
{{- define "sourcebuild-operator.kanikoImage" -}}
{{- include "sourcebuild-operator.imageRef" (dict "image" .Values.kanikoImage "default" "") }}
{{- end }}

{{/*
RBAC rules of the controller: exactly what it uses and no more. It never reads Secrets or
ConfigMaps: build Pods mount them, the controller only names them.
*/}}
{{- define "sourcebuild-operator.rules" -}}
# SourceBuilds come from a watch (list + watch); nothing reads one by name.
- apiGroups: ["sourcebuild.dev"]
  resources: ["sourcebuilds"]
  verbs: ["list", "watch"]
# Status is written with a patch of the status subresource, never read through it.
- apiGroups: ["sourcebuild.dev"]
  resources: ["sourcebuilds/status"]
  verbs: ["patch"]
# get: the Pod watch may lag behind the controller's own create; create and delete: build Pods.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# The Events the controller publishes (events.k8s.io; patch: a repeated Event's series).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Read only: the kubelet reports a missing Secret or ConfigMap volume only as a FailedMount
# Event on the build Pod, watched (field-selected to FailedMount) to fail the build at once
# instead of at its timeout.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list", "watch"]
{{- end }}

{{/*
The namespaces to watch: watchNamespaces plus watchNamespace, without duplicates; empty for all.
*/}}
{{- define "sourcebuild-operator.watchNamespaces" -}}
{{- $all := .Values.watchNamespaces | default list -}}
{{- with .Values.watchNamespace }}{{- $all = append $all . -}}{{- end -}}
{{- $all | uniq | join "," -}}
{{- end }}

{{/*
The provenance's builder.id: this release's operator identity in the named cluster, unless set.
*/}}
{{- define "sourcebuild-operator.builderId" -}}
{{- if .Values.provenance.builderId }}
{{- .Values.provenance.builderId }}
{{- else }}
{{- printf "https://sourcebuild.dev/clusters/%s/namespaces/%s/serviceaccounts/%s" .Values.provenance.clusterName .Release.Namespace (include "sourcebuild-operator.serviceAccountName" .) }}
{{- end }}
{{- end }}
