# Build recipe for oras, sourced by scripts/tools.sh (see tools/README.md).
# `oras discover` lists an image's OCI 1.1 referrers in tests/provenance.rs, through the referrers
# API or, where a registry has none, the tag-scheme fallback (oras-go does both), so the
# provenance referrer is checked with a client other than ours.
TOOL_MODULE=oras.land/oras
TOOL_PACKAGE=oras.land/oras/cmd/oras
TOOL_LDFLAGS="-s -w"
