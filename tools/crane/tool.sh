# Build recipe for crane, sourced by scripts/tools.sh (see tools/README.md).
# crane serves the local test registry (`crane registry serve`) and pushes, inspects and
# exports images in tests and scripts/builder-images.sh.
TOOL_MODULE=github.com/google/go-containerregistry
TOOL_PACKAGE=github.com/google/go-containerregistry/cmd/crane
TOOL_LDFLAGS="-s -w
 -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$(tool_module_version "$TOOL_MODULE")"
