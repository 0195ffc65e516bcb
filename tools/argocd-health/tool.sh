# Build recipe for argocd-health, sourced by scripts/tools.sh: our few lines (main.go) that run
# a health.lua on gopher-lua as Argo CD's util/lua does. Argo CD's own module is not built: v3.6
# needs Go 1.27 and its gitops-engine module, which does not resolve here; older releases need
# their dozens of replace lines and k8s.io/kubernetes, a build of most of Kubernetes for one file.
TOOL_MODULE=github.com/yuin/gopher-lua
TOOL_PACKAGE=.
TOOL_LDFLAGS="-s -w"
