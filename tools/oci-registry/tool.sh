# Build recipe for oci-registry, sourced by scripts/tools.sh (see tools/README.md): our few lines
# (main.go) serving go-containerregistry's registry with its OCI 1.1 referrers API on, for
# tests/provenance.rs (`crane registry serve` has that API off).
TOOL_MODULE=github.com/google/go-containerregistry
TOOL_PACKAGE=.
TOOL_LDFLAGS="-s -w"
