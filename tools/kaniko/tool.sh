# Build recipe for kaniko, sourced by scripts/tools.sh (see tools/README.md).
# The executor from Chainguard's maintained fork of Kaniko (upstream was archived in 2025).
# Built like the fork's Makefile: static (CGO off, the tools.sh default), version stamped.
# Tests run it only inside a throwaway root (tests/support/kaniko.rs), never on the host's /.
TOOL_MODULE=github.com/chainguard-dev/kaniko
TOOL_PACKAGE=github.com/chainguard-dev/kaniko/cmd/executor
TOOL_LDFLAGS="-s -w
 -X github.com/chainguard-dev/kaniko/pkg/version.version=$(tool_module_version "$TOOL_MODULE")"
