# Build recipe for argocd-health, sourced by scripts/tools.sh: our few lines (main.go) that run
# a health.lua on gopher-lua as Argo CD's util/lua does. Argo CD's own module is not built: its
# gitops-engine dependency does not resolve with this Go, and it would bring all of Argo CD.
TOOL_MODULE=github.com/yuin/gopher-lua
TOOL_PACKAGE=.
TOOL_LDFLAGS="-s -w"
