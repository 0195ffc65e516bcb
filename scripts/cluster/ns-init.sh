#!/usr/bin/env bash
# PID 1 of the test cluster's namespaces, started by scripts/cluster.sh up as
#   unshare --net --mount --pid --fork --mount-proc --propagation private -- ns-init.sh RUN
# It lays out the mount and network namespaces, writes RUN/ns-ready, and then becomes the
# cluster's pause program (waits for a signal, reaps orphans), so every daemon started later with
# nsenter is its descendant: killing it ends the whole PID namespace, every container included.
#
# Mounts (private to this namespace, gone with it):
#   /run             a fresh tmpfs: defaults like /run/containerd, /run/netns land in it
#   /var             an overlay over the host's /var, writes go to RUN/var: defaults like
#                    /var/lib/cni (libcni's cache), /var/log/containers (the kubelet's links)
#   /etc/hosts       the node name and localhost on 127.0.0.1
#   /etc/resolv.conf a nameserver on 127.0.0.1 (nothing answers: no query leaves)
# Network: loopback, and the pod bridge BRIDGE with the pods' gateway BRIDGE_IP/24 and the
# node's InternalIP NODE_IP/32, and a route to the Service range on the bridge. No other
# interface, no default route.
set -euo pipefail

run=${1:?usage: ns-init.sh RUN}
# shellcheck source=/dev/null
source "$run/cluster.env"

mount -t tmpfs -o mode=0755,size=256m sourcebuild-run /run
mkdir -p "$run/var/upper" "$run/var/work"
mount -t overlay sourcebuild-var -o "lowerdir=/var,upperdir=$run/var/upper,workdir=$run/var/work" /var
printf '127.0.0.1 localhost %s\n::1 localhost\n' "$NODE" >"$run/etc/hosts"
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$run/etc/resolv.conf"
mount --bind "$run/etc/hosts" /etc/hosts
mount --bind "$run/etc/resolv.conf" /etc/resolv.conf

ip link set lo up
ip link add "$BRIDGE" type bridge
ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
ip addr add "$NODE_IP/32" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Services' ClusterIPs from the namespace itself (tests, the demo): kube-proxy's output rules
# turn them into addresses of the namespace or of Pods on the bridge.
ip route add "$SERVICE_RANGE" dev "$BRIDGE"

touch "$run/ns-ready"
exec "$run/bin/pause"
