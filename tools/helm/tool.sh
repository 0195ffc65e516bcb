# Build recipe for helm, sourced by scripts/tools.sh (see tools/README.md).
# Helm's Makefile sets these ldflags; without the k8sVersion ones `helm lint/template`
# assume Kubernetes 1.20 and our chart's kubeVersion (>=1.30.0-0) fails.
TOOL_MODULE=helm.sh/helm/v3
TOOL_PACKAGE=helm.sh/helm/v3/cmd/helm
k8s_minor=$(tool_module_version k8s.io/client-go | cut -d. -f2)
TOOL_LDFLAGS="-s -w
 -X helm.sh/helm/v3/internal/version.version=$(tool_module_version "$TOOL_MODULE")
 -X helm.sh/helm/v3/internal/version.gitTreeState=clean
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${k8s_minor}
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8s_minor}"
