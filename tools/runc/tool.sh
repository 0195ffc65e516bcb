# Build recipe for runc, sourced by scripts/tools.sh (see tools/README.md): the OCI runtime
# containerd's shim runs every container of the test node with (scripts/cluster.sh).
# cgo and the `seccomp` tag are required: without them every Pod with a seccomp profile
# (RuntimeDefault) fails with "seccomp: config provided but seccomp not supported". Needs gcc,
# pkg-config and libseccomp-dev at build time (.ci/run installs them) and libseccomp2 at run
# time. runc reads its version from its embedded VERSION file; no ldflags needed for it.
TOOL_MODULE=github.com/opencontainers/runc
TOOL_PACKAGE=github.com/opencontainers/runc
TOOL_CGO=1
TOOL_TAGS=seccomp
TOOL_LDFLAGS="-s -w"
