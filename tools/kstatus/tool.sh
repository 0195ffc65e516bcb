# Build recipe for kstatus, sourced by scripts/tools.sh: our own few lines (main.go) around
# sigs.k8s.io/cli-utils' kstatus, the library Flux's health checks and cli-utils' waits use.
TOOL_MODULE=sigs.k8s.io/cli-utils
TOOL_PACKAGE=.
TOOL_LDFLAGS="-s -w"
