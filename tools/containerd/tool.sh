# Build recipe for containerd, its runc shim and ctr, sourced by scripts/tools.sh (see
# tools/README.md): the test node's container runtime (CRI) in scripts/cluster.sh.
# Static (CGO off) and without the btrfs, devmapper and zfs snapshotters (the node uses
# overlayfs); version stamped like upstream's Makefile. Prints the bin directory.
TOOL_MODULE=github.com/containerd/containerd/v2
TOOL_PACKAGES="github.com/containerd/containerd/v2/cmd/containerd
 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
 github.com/containerd/containerd/v2/cmd/ctr"
TOOL_TAGS=no_btrfs,no_devmapper,no_zfs
TOOL_LDFLAGS="-s -w
 -X github.com/containerd/containerd/v2/version.Version=$(tool_module_version "$TOOL_MODULE")
 -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
