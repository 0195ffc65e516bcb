# Build recipe for cosign, sourced by scripts/tools.sh (see tools/README.md).
# cosign verifies what `sourcebuild publish` pushes in tests/provenance.rs: the image's signature
# (`cosign verify`) and the SLSA provenance attestation (`cosign verify-attestation`), and makes
# the tests' key pairs (`cosign generate-key-pair`).
TOOL_MODULE=github.com/sigstore/cosign/v2
TOOL_PACKAGE=github.com/sigstore/cosign/v2/cmd/cosign
TOOL_LDFLAGS="-s -w
 -X sigs.k8s.io/release-utils/version.gitVersion=$(tool_module_version "$TOOL_MODULE")"
