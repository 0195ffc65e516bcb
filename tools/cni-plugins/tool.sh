# Build recipe for the CNI plugins the test node's pod network uses (scripts/cluster.sh),
# sourced by scripts/tools.sh (see tools/README.md): bridge with host-local IPAM, loopback,
# and portmap (hostPort). Prints the bin directory, which is containerd's cni bin_dirs.
TOOL_MODULE=github.com/containernetworking/plugins
TOOL_PACKAGES="github.com/containernetworking/plugins/plugins/main/bridge
 github.com/containernetworking/plugins/plugins/main/loopback
 github.com/containernetworking/plugins/plugins/ipam/host-local
 github.com/containernetworking/plugins/plugins/meta/portmap"
TOOL_LDFLAGS="-s -w
 -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$(tool_module_version "$TOOL_MODULE")"
