{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "pairwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release name plus chart name, unless the release name already holds it. */}}
{{- define "pairwarden.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pairwarden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "pairwarden.labels" -}}
helm.sh/chart: {{ include "pairwarden.chart" . }}
{{ include "pairwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pairwarden
{{- end -}}

{{/* Labels selecting the operator's pods (never change them: selectors are immutable). */}}
{{- define "pairwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pairwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pairwarden.operatorSelectorLabels" -}}
{{ include "pairwarden.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "pairwarden.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "pairwarden.fullname" .)) .Values.serviceAccount.operatorName -}}
{{- end -}}

{{- define "pairwarden.replicationServiceAccount" -}}
{{- default (printf "%s-replication" (include "pairwarden.fullname" .)) .Values.serviceAccount.replicationName -}}
{{- end -}}

{{/* "[registry/]repository:tag[@digest]" of one image; the tag defaults to the appVersion,
     the digest (set by `make release` in a released chart) pins the exact image. */}}
{{- define "pairwarden.image" -}}
{{- $img := index .root.Values.image .which -}}
{{- $registry := .root.Values.image.registry | default "" | trimSuffix "/" -}}
{{- with $registry }}{{ . }}/{{ end -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- with $img.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/* Namespaces the operator serves, as a JSON list; empty when it watches all of them. */}}
{{- define "pairwarden.watchNamespaces" -}}
{{- if .Values.operator.watch.allNamespaces -}}
{{- list | toJson -}}
{{- else if .Values.operator.watch.namespaces -}}
{{- .Values.operator.watch.namespaces | uniq | toJson -}}
{{- else if .Values.memberNamespaces -}}
{{- .Values.memberNamespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* Namespaces where members run, as a JSON list (see memberNamespaces in values.yaml). */}}
{{- define "pairwarden.memberNamespaces" -}}
{{- if .Values.memberNamespaces -}}
{{- .Values.memberNamespaces | uniq | toJson -}}
{{- else if not .Values.operator.watch.allNamespaces -}}
{{- include "pairwarden.watchNamespaces" . -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* The Service in front of /metrics; also the `job` label Prometheus gives its targets. */}}
{{- define "pairwarden.metricsServiceName" -}}
{{- printf "%s-metrics" (include "pairwarden.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator's rules on namespaced resources, granted cluster-wide or per watched
     namespace. docs/install.md explains every verb. */}}
{{- define "pairwarden.operatorNamespacedRules" -}}
# Every verb below is one the code calls; docs/install.md says why, one line each.
# FailoverPairs: kopf lists and watches them, patches finalizers and its annotations.
- apiGroups: ["pairwarden.io"]
  resources: ["failoverpairs"]
  verbs: ["get", "list", "watch", "patch"]
# The status of each pair (active member, epoch, conditions).
- apiGroups: ["pairwarden.io"]
  resources: ["failoverpairs/status"]
  verbs: ["patch"]
# Member Leases (created by the operator, renewed by agents) and the active Lease.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
# Member pods: read their state and address, add the pair/member/role labels, watch the
# labelled ones for containers the kubelet reports dead (a crash fails over at once).
# Replication Job pods: list them by job-name to read the report from their termination message.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
# The callers' Service: read each step, its selector set to the active member.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "patch"]
# Events on FailoverPairs (kopf posts core Events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Replication Jobs from the active to the standby member: one watch, create, clean up.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# The per-pair replication token: created once, never read back (409: it exists).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
# Per pair, the agents' identity: a ServiceAccount, a Role naming only the pair's Leases and
# FailoverPair (resourceNames), its RoleBinding; and the Jobs' token-less ServiceAccount.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["create"]
{{- if .Values.networkPolicy.enabled }}
# Per pair, the NetworkPolicy over its members (controller/netpol.py), read and written only
# when it differs (the callers' Service, read above, gives its ports).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch"]
{{- end }}
{{- end }}

{{/* The top-level metadata block of each CRD: kept on uninstall, labelled as the release's. */}}
{{- define "pairwarden.crdMetadata" -}}
{{ printf "\nmetadata:\n  annotations:\n    helm.sh/resource-policy: keep\n  labels:\n" }}
{{- include "pairwarden.labels" . | indent 4 }}
{{ "" }}
{{- end -}}
