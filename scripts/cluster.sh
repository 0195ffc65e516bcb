#!/usr/bin/env bash
# A real single-node Kubernetes cluster inside namespaces of its own: nothing it runs can send a
# packet off this machine, and `down` leaves the host as it was.
#
#   scripts/cluster.sh up               start it (cleaning what an earlier, killed run left)
#   scripts/cluster.sh down             stop it and undo every host change
#   scripts/cluster.sh status           is it up? (exit 0 when up)
#   scripts/cluster.sh kubectl ARGS...  kubectl as the cluster admin, run inside the namespace
#   scripts/cluster.sh exec CMD...      run CMD inside the namespaces (KUBECONFIG etc. set)
#   scripts/cluster.sh shell            an interactive shell inside the namespaces
#   scripts/cluster.sh env              the variables `exec` and `shell` set, as shell lines
#   scripts/cluster.sh stop NAME [SIG]  stop one daemon (kubelet, containerd, kube-proxy, ...) with
#                                       SIG (default TERM; KILL for a crash) and wait for its end
#   scripts/cluster.sh start NAME       start it again with the same command line
#   scripts/cluster.sh operator         rebuild the operator image from this checkout and roll the
#                                       chart's Deployment to it (after a code change)
#   scripts/cluster.sh smoke            run a locked-down Pod on the node (scripts/cluster/smoke.sh)
#   scripts/cluster.sh smoke kaniko     a Kaniko build Pod on the node (scripts/cluster/kaniko-smoke.sh;
#                                       `scripts/tools.sh kaniko` first: nothing is built inside)
#
# Inside a new network, mount and PID namespace (scripts/cluster/ns-init.sh is its PID 1):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a registry
# (crane registry serve), containerd (runc, CNI bridge), a kubelet and kube-proxy (nftables).
# The network namespace has loopback and the pod bridge only; Pods get no route beyond their
# subnet but the Service range's (to the bridge, where kube-proxy's rules are). Every binary is
# a pinned tool (scripts/tools.sh), built outside the namespace before it starts.
#
# Addresses (the same on every run: the namespace has its own ports):
#   API server   https://127.0.0.1:6443 (and https://10.88.0.1:6443, where Pods reach it)
#   registry     10.88.0.1:5000, plain HTTP (containerd and Pods both reach it there)
#   node         sourcebuild-node, InternalIP 198.51.100.10; Pods on 10.88.0.0/24
#   sandbox      10.88.0.1:5000/sourcebuild/pause:1 (images/pause/pause.c)
#
# Host state it changes, all undone by `down` and by the cleanup that starts `up`:
#   - sysctls the kubelet sets (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory,
#     vm.panic_on_oom, kernel.keys.root_maxkeys/root_maxbytes): saved before, restored after;
#   - cgroups: the kubelet's tree under /sys/fs/cgroup/*/sourcebuild-<run dir's name>;
#   - processes: all live in the PID namespace; killing its PID 1 ends them all.
# Mounts, interfaces and routes live in the namespaces and go with them.
#
# Environment:
#   SOURCEBUILD_CACHE        cache root (default ~/.cache/sourcebuild-operator): tools, and
#                            the run directory $SOURCEBUILD_CACHE/cluster
#   SOURCEBUILD_CLUSTER_DIR  the run directory instead (state, certificates, logs/)
#   SOURCEBUILD_CLUSTER_KEEP=1  a failed `up` leaves what it started running, to look at
#   SOURCEBUILD_CLUSTER_WAIT=S  `up` waits up to S seconds for another run directory's cluster
#                            to go down (default 0: fail at once)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SOURCEBUILD_CACHE=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}
run=${SOURCEBUILD_CLUSTER_DIR:-$SOURCEBUILD_CACHE/cluster}

NODE=sourcebuild-node
# A documentation address (TEST-NET-2), only inside the namespace. Not 192.0.2.0/24: this
# machine's own eth0 is on that one.
NODE_IP=198.51.100.10
BRIDGE=sbnode0
BRIDGE_IP=10.88.0.1
POD_SUBNET=10.88.0.0/24
SERVICE_RANGE=10.0.0.0/24
REGISTRY=$BRIDGE_IP:5000
API_URL=https://127.0.0.1:6443
PAUSE_IMAGE=$REGISTRY/sourcebuild/pause:1
CGROUP_ROOT=sourcebuild-$(basename "$run")
SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --- the namespaces' PID 1 --------------------------------------------------------------------

# The host PID of this run's ns-init (PID 1 of the cluster's PID namespace), or nothing. Found
# by the marker in its environment, in a PID namespace other than ours (unshare, its parent,
# carries the marker too).
init_pid() {
  local p ours
  ours=$(readlink /proc/self/ns/pid)
  for p in /proc/[0-9]*; do
    [[ -r $p/environ ]] || continue
    { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "SOURCEBUILD_CLUSTER_INIT=$run" || continue
    [[ $(readlink "$p/ns/pid" 2>/dev/null) != "$ours" ]] || continue
    echo "${p#/proc/}"
    return 0
  done
  return 0
}

# The run directories of clusters up on this machine other than ours.
other_clusters() {
  local p m ours
  ours=$(readlink /proc/self/ns/pid)
  for p in /proc/[0-9]*; do
    m=$({ tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -m1 '^SOURCEBUILD_CLUSTER_INIT=') || continue
    [[ ${m#*=} != "$run" && $(readlink "$p/ns/pid" 2>/dev/null) != "$ours" ]] && echo "${m#*=}"
  done | sort -u
}

# True inside the cluster's namespaces (scripts/cluster.sh exec, a test run there): PID 1 is
# this run's ns-init.
inside() {
  { tr '\0' '\n' </proc/1/environ; } 2>/dev/null | grep -qxF "SOURCEBUILD_CLUSTER_INIT=$run"
}

# Run a command inside the cluster's namespaces (network, mount, PID).
inns() {
  local pid
  if inside; then
    "$@"
    return
  fi
  pid=$(init_pid)
  [[ -n $pid ]] || die "the cluster is not up (scripts/cluster.sh up)"
  nsenter -t "$pid" -n -m -p -- "$@"
}

# start NAME CMD...: a daemon inside the namespaces, logging to logs/NAME.log. The inner shell
# backgrounds it and exits, so the daemon is reparented to ns-init (nothing of it stays on the
# host's side); its PID (as the namespace sees it) goes to pids/NAME.
start() {
  local name=$1
  shift
  # The command line, to start it again after `stop` (fault tests: kubelet, containerd).
  mkdir -p "$run/cmd"
  printf '%q ' "$@" >"$run/cmd/$name"
  # shellcheck disable=SC2016 # expanded by the inner shell
  inns /bin/sh -c 'name=$1 run=$2; shift 2
    setsid "$@" </dev/null >>"$run/logs/$name.log" 2>&1 &
    echo $! >"$run/pids/$name"' sh "$name" "$run" "$@"
}

# wait_for WHAT SECONDS CMD...: retry CMD (inside the namespaces) until it succeeds.
wait_for() {
  local what=$1 secs=$2 start=$SECONDS
  shift 2
  until inns "$@" >/dev/null 2>&1; do
    if ((SECONDS - start > secs)); then
      log "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
  log "$what ready after $((SECONDS - start))s"
}

# --- cleanup (down, and the start of up) ---------------------------------------------------

# Every cgroup directory of this cluster, deepest first.
our_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -d $h$CGROUP_ROOT ]] && find "$h$CGROUP_ROOT" -depth -type d
  done
  return 0
}

cleanup() {
  local pid i left
  pid=$(init_pid)
  if [[ -n $pid ]]; then
    log "stopping the cluster (PID namespace of $pid)"
    # SIGKILL to a PID namespace's init kills every process in it and in the namespaces
    # below it (the Pods' containers).
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      [[ -e /proc/$pid ]] || break
      sleep 0.1
    done
    [[ ! -e /proc/$pid ]] || die "ns-init $pid did not die"
  fi
  # The unshare that started ns-init exits with it.
  # cgroups: empty once their processes are reaped; retry while the kernel finishes.
  for ((i = 0; i < 100; i++)); do
    left=0
    while read -r d; do
      rmdir "$d" 2>/dev/null || left=1
    done < <(our_cgroups)
    ((left == 0)) && break
    sleep 0.2
  done
  [[ -z $(our_cgroups) ]] || log "WARNING: cgroups left: $(our_cgroups | tr '\n' ' ')"
  if [[ -f $run/sysctls ]]; then
    local name value
    while read -r name value; do
      [[ $(sysctl -n "$name") == "$value" ]] || sysctl -q -w "$name=$value"
    done <"$run/sysctls"
    log "sysctls restored: $(tr '\n' ' ' <"$run/sysctls")"
  fi
  if [[ -f $run/.sourcebuild-cluster ]]; then
    # Keep the last run's logs for a post-mortem; everything else goes (only in a directory
    # `up` made: a mistyped SOURCEBUILD_CLUSTER_DIR is never emptied).
    find "$run" -mindepth 1 -maxdepth 1 ! -name logs ! -name .sourcebuild-cluster -exec rm -rf {} +
  fi
}

# --- up ------------------------------------------------------------------------------------

tool() { "$repo/scripts/tools.sh" "$1"; }

# The operator binary the operator image is made of: SOURCEBUILD_OPERATOR_BINARY, else a debug
# build of this checkout (the image's runtime is this machine's libc, so any build runs in it).
operator_binary() {
  binary=${SOURCEBUILD_OPERATOR_BINARY:-}
  if [[ -z $binary ]]; then
    if [[ -z ${CARGO_TARGET_DIR:-} ]]; then
      CARGO_TARGET_DIR=$SOURCEBUILD_CACHE/cargo-target-$(rustc --version | cut -d' ' -f2)
      export CARGO_TARGET_DIR
    fi
    log "building the operator (cargo build --bin sourcebuild)"
    (cd "$repo" && cargo build --locked --quiet --bin sourcebuild) || die "cargo build failed"
    binary=$CARGO_TARGET_DIR/debug/sourcebuild
  fi
  [[ -x $binary ]] || die "no operator binary at $binary"
}

# The operator as the chart's Deployment (release sourcebuild in sourcebuild-system), with its
# image, the Kaniko image and both S2I builder images in the cluster's registry; waits until
# the Deployment is available. Writes RUN/images.env (the references, for tests and the demo).
install_operator() {
  local operator kaniko builders kaniko_version
  # tools/kaniko-vX.Y.Z/bin/kaniko: the image is tagged with the executor's version.
  kaniko_version=$(basename "$(dirname "$(dirname "$executor")")"); kaniko_version=${kaniko_version#kaniko-}
  log "pushing the operator, Kaniko and builder images"
  operator=$(inns bash "$repo/scripts/cluster/images.sh" operator "$run" "$crane" \
    "$REGISTRY/sourcebuild/operator:dev" "$binary" 2>>"$run/logs/images.log" | tail -1) \
    || { cat "$run/logs/images.log" >&2; die "pushing the operator image failed"; }
  kaniko=$(inns bash "$repo/scripts/cluster/images.sh" kaniko "$run" "$crane" \
    "$REGISTRY/sourcebuild/kaniko:$kaniko_version" "$executor" 2>>"$run/logs/images.log" | tail -1) \
    || { cat "$run/logs/images.log" >&2; die "pushing the Kaniko image failed"; }
  builders=$(inns "$repo/scripts/builder-images.sh" "$REGISTRY" 2>>"$run/logs/images.log") \
    || { cat "$run/logs/images.log" >&2; die "pushing the builder images failed"; }
  {
    echo "export SOURCEBUILD_CLUSTER_OPERATOR_IMAGE=$REGISTRY/sourcebuild/operator:dev@$operator"
    echo "export SOURCEBUILD_CLUSTER_KANIKO_IMAGE=$REGISTRY/sourcebuild/kaniko:$kaniko_version@$kaniko"
    echo "export SOURCEBUILD_CLUSTER_BUILDER_SCLORG=$(awk '$1 == "python-sclorg" {print $2}' <<<"$builders")"
    echo "export SOURCEBUILD_CLUSTER_BUILDER_DAEPLOY=$(awk '$1 == "python-daeploy" {print $2}' <<<"$builders")"
  } >"$run/images.env"
  # shellcheck source=/dev/null
  source "$run/images.env"
  log "installing the chart (helm upgrade --install sourcebuild, namespace sourcebuild-system)"
  inns env HELM_CACHE_HOME="$run/helm/cache" HELM_CONFIG_HOME="$run/helm/config" \
    HELM_DATA_HOME="$run/helm/data" "$helm" upgrade --install sourcebuild "$repo/charts/sourcebuild-operator" \
    --kubeconfig "$run/pki/admin.kubeconfig" --namespace sourcebuild-system --create-namespace \
    --set image.repository="$REGISTRY/sourcebuild/operator" --set image.tag=dev \
    --set image.digest="$operator" \
    --set kanikoImage.repository="$REGISTRY/sourcebuild/kaniko" --set kanikoImage.tag="$kaniko_version" \
    --set kanikoImage.digest="$kaniko" \
    --set defaultBuilderImage="$SOURCEBUILD_CLUSTER_BUILDER_SCLORG" \
    --set "insecureRegistries={$REGISTRY}" --set logFormat=text \
    --wait --timeout 5m >>"$run/logs/helm.log" 2>&1 \
    || { cat "$run/logs/helm.log" >&2; die "installing the chart failed"; }
  log "operator ready: deployment sourcebuild-system/sourcebuild-sourcebuild-operator"
}

up() {
  local k8s etcd crane containerd runc cni helm executor binary
  for c in unshare nsenter ip openssl gcc sysctl nft; do
    command -v "$c" >/dev/null || die "$c is missing (.ci/run installs it)"
  done
  [[ $(id -u) == 0 ]] || die "needs root"
  # The kubelet's sysctls are host-wide: a second cluster would save the first one's values.
  local other waited=$SECONDS
  other=$(other_clusters)
  while [[ -n $other ]] && ((SECONDS - waited < ${SOURCEBUILD_CLUSTER_WAIT:-0})); do
    sleep 2
    other=$(other_clusters)
  done
  [[ -z $other ]] || die "another cluster is up ($other): SOURCEBUILD_CLUSTER_DIR=$other scripts/cluster.sh down first"
  if [[ -e $run && ! -f $run/.sourcebuild-cluster && -n $(ls -A "$run") ]]; then
    die "$run is not empty and not a cluster's run directory: choose another SOURCEBUILD_CLUSTER_DIR"
  fi
  cleanup
  mkdir -p "$run"
  touch "$run/.sourcebuild-cluster"
  rm -rf "$run/logs"
  # A failed start stops what it started (SOURCEBUILD_CLUSTER_KEEP=1 keeps it to look at).
  trap 'log "up failed; logs in $run/logs"; [[ -n ${SOURCEBUILD_CLUSTER_KEEP:-} ]] || cleanup' EXIT
  # Tools first, outside the namespace (building them needs the Go module proxy).
  k8s=$(tool kubernetes) etcd=$(tool etcd) crane=$(tool crane)
  containerd=$(tool containerd) runc=$(tool runc) cni=$(tool cni-plugins)
  helm=$(tool helm) executor=$(tool kaniko)
  # The builder images' Debian root filesystem (debootstrap needs the package mirror).
  log "the builder images' Debian base (first run: minutes)"
  "$repo/scripts/builder-images.sh" --base >/dev/null
  operator_binary

  mkdir -p "$run"/{bin,etc,logs,pids,pki,etcd,registry,kubelet,pod-logs,cni/net.d,cni/ipam,containerd/certs.d/"$REGISTRY",images}
  gcc -static -Os -Wall -Wextra -o "$run/bin/pause" "$repo/images/pause/pause.c"
  strip "$run/bin/pause"
  cat >"$run/cluster.env" <<EOF
NODE=$NODE
NODE_IP=$NODE_IP
BRIDGE=$BRIDGE
BRIDGE_IP=$BRIDGE_IP
SERVICE_RANGE=$SERVICE_RANGE
EOF
  bash "$repo/scripts/cluster/pki.sh" "$run/pki" "$NODE" "$NODE_IP" "$BRIDGE_IP" "$API_URL"

  # The kubelet changes these host-wide: remember them to restore.
  for s in "${SYSCTLS[@]}"; do echo "$s $(sysctl -n "$s")"; done >"$run/sysctls"
  # The kubelet's cgroup root must exist in every hierarchy (cpuset needs cpus and mems).
  local h
  for h in /sys/fs/cgroup/*/; do
    mountpoint -q "$h" || continue
    mkdir -p "$h$CGROUP_ROOT"
    if [[ -f $h/cpuset.cpus ]]; then
      cat "$h/cpuset.cpus" >"$h$CGROUP_ROOT/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h$CGROUP_ROOT/cpuset.mems"
    fi
  done

  log "starting the namespaces"
  SOURCEBUILD_CLUSTER_INIT=$run setsid unshare --net --mount --pid --fork --mount-proc \
    --propagation private -- bash "$repo/scripts/cluster/ns-init.sh" "$run" \
    </dev/null >"$run/logs/ns-init.log" 2>&1 &
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -f $run/ns-ready ]] && break
    sleep 0.1
  done
  [[ -f $run/ns-ready ]] || { cat "$run/logs/ns-init.log" >&2; die "the namespaces did not come up"; }

  local pki=$run/pki
  # Audit: every request on Secrets and ConfigMaps, and each Pod and SourceBuild creation, at
  # Metadata level (no bodies): the tests prove from it that the operator never asks for a
  # Secret or ConfigMap.
  cat >"$run/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources: [{group: "", resources: [secrets, configmaps]}]
  - level: Metadata
    verbs: [create]
    resources: [{group: "", resources: [pods]}, {group: sourcebuild.dev, resources: [sourcebuilds]}]
  - level: None
EOF
  start etcd "$etcd" --name=sourcebuild --data-dir="$run/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=sourcebuild=http://127.0.0.1:2380 --unsafe-no-fsync=true --log-level=warn
  start kube-apiserver "$k8s/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --cert-dir="$run/apiserver" --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
    --secure-port=6443 --bind-address=0.0.0.0 --advertise-address="$BRIDGE_IP" \
    --service-cluster-ip-range="$SERVICE_RANGE" --allow-privileged=true \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=Hostname \
    --audit-policy-file="$run/audit-policy.yaml" --audit-log-path="$run/logs/audit.log"
  wait_for "kube-apiserver" 120 "$k8s/kubectl" --kubeconfig="$pki/admin.kubeconfig" \
    --cache-dir="$run/kube-cache" get --raw=/readyz
  start kube-controller-manager "$k8s/kube-controller-manager" \
    --kubeconfig="$pki/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$pki/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$pki/controller-manager.kubeconfig" \
    --controllers='*' --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" --leader-elect=false --bind-address=127.0.0.1 \
    --cert-dir="$run/kcm-certs" --use-service-account-credentials=true \
    --flex-volume-plugin-dir="$run/flexvolume"
  start kube-scheduler "$k8s/kube-scheduler" --kubeconfig="$pki/scheduler.kubeconfig" \
    --authentication-kubeconfig="$pki/scheduler.kubeconfig" \
    --authorization-kubeconfig="$pki/scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1
  start registry "$crane" registry serve --address "$REGISTRY" --disk "$run/registry"
  wait_for "registry" 30 "$crane" catalog --insecure "$REGISTRY"
  log "pushing the sandbox image"
  inns bash "$repo/scripts/cluster/images.sh" pause "$run" "$crane" "$PAUSE_IMAGE" >>"$run/logs/images.log" 2>&1 \
    || { cat "$run/logs/images.log" >&2; die "pushing the sandbox image failed"; }

  # containerd: everything under the run directory; the registry is plain HTTP.
  cat >"$run/containerd/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"

[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve", "push"]
EOF
  cat >"$run/containerd/config.toml" <<EOF
version = 3
root = "$run/containerd/root"
# The namespace's own /run (a tmpfs, as on a node): the containers' bundles and rootfs mounts
# live here, on a path a user-namespaced container's root may traverse (the run directory is
# under /root, mode 0700, and runc fails with EACCES there for a Pod with hostUsers: false).
state = "/run/containerd"

[grpc]
  address = "$run/containerd/containerd.sock"
[ttrpc]
  address = "$run/containerd/containerd.sock.ttrpc"

[plugins]
  # Its default /opt/containerd would be made on the host.
  [plugins.'io.containerd.internal.v1.opt']
    path = '$run/containerd/opt'
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '$run/containerd/certs.d'
  [plugins.'io.containerd.cri.v1.runtime']
    # This machine's bounding set lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$runc'
          Root = '$run/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$cni']
      conf_dir = '$run/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
EOF
  # The pod network: a bridge with host-local addresses, no masquerade, and no route beyond
  # the subnet but one to the Service range via the bridge (kube-proxy's rules in the node's
  # namespace turn those addresses into the node's own); no default route in the Pods.
  cat >"$run/cni/net.d/10-sourcebuild.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "sourcebuild",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$run/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "rangeStart": "${BRIDGE_IP%.*}.10", "gateway": "$BRIDGE_IP"}]],
        "routes": [{"dst": "$SERVICE_RANGE"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # containerd's runc shim is found on PATH.
  start containerd env PATH="$containerd:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$containerd/containerd" --config "$run/containerd/config.toml"
  wait_for "containerd" 60 "$containerd/ctr" --address "$run/containerd/containerd.sock" version

  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$run/etc/pod-resolv.conf"
  cat >"$run/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$run/containerd/containerd.sock
address: 127.0.0.1
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
oomScoreAdj: 0
podLogsDir: $run/pod-logs
volumePluginDir: $run/flexvolume
resolvConf: $run/etc/pod-resolv.conf
clusterDomain: cluster.local
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
  start kubelet "$k8s/kubelet" --config="$run/kubelet/config.yaml" --root-dir="$run/kubelet" \
    --kubeconfig="$pki/kubelet.kubeconfig" --hostname-override="$NODE" --node-ip="$NODE_IP" \
    --v=1
  # kube-proxy (nftables): its rules live in the namespace's own netfilter tables. No
  # conntrack sysctls (maxPerCore 0): those are the host's.
  cat >"$run/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: $pki/kube-proxy.kubeconfig
hostnameOverride: $NODE
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $POD_SUBNET
nodePortAddresses: ["$BRIDGE_IP/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  start kube-proxy "$k8s/kube-proxy" --config="$run/kube-proxy.yaml" --v=1
  wait_for "node $NODE Ready" 120 "$k8s/kubectl" --kubeconfig="$pki/admin.kubeconfig" \
    --cache-dir="$run/kube-cache" wait --for=condition=Ready "node/$NODE" --timeout=2s

  # The controller-manager works (ServiceAccounts are made): Pods can be created.
  wait_for "kube-controller-manager (ServiceAccount default/default)" 120 "$k8s/kubectl" \
    --kubeconfig="$pki/admin.kubeconfig" --cache-dir="$run/kube-cache" \
    get serviceaccount default -n default
  install_operator
  env_lines >"$run/env"
  trap - EXIT
  cat >&2 <<EOF
cluster.sh: up (state in $run, logs in $run/logs)
  scripts/cluster.sh kubectl get nodes
  scripts/cluster.sh shell            # a shell inside the cluster's namespaces
  registry $REGISTRY (plain HTTP), API server $API_URL, kubeconfig $pki/admin.kubeconfig
  scripts/cluster.sh down
EOF
}

env_lines() {
  local k8s helm_bin
  k8s=$(tool kubernetes) helm_bin=$(tool helm)
  cat <<EOF
export KUBECONFIG=$run/pki/admin.kubeconfig
export KUBECACHEDIR=$run/kube-cache
export HELM_CACHE_HOME=$run/helm/cache HELM_CONFIG_HOME=$run/helm/config HELM_DATA_HOME=$run/helm/data
export SOURCEBUILD_CLUSTER_REGISTRY=$REGISTRY
export SOURCEBUILD_CLUSTER_API=$API_URL
export SOURCEBUILD_CLUSTER_NODE=$NODE
export SOURCEBUILD_CLUSTER_BRIDGE_IP=$BRIDGE_IP
export SOURCEBUILD_CLUSTER_DIR=$run
export PATH=$k8s:$(dirname "$helm_bin"):\$PATH
EOF
  cat "$run/images.env" 2>/dev/null || true
}

cmd=${1:-}
shift || true
case $cmd in
  kubectl | exec | shell | smoke | stop | start | operator) [[ ( -n $(init_pid) || inside ) && -f $run/env ]] || die "the cluster is not up (scripts/cluster.sh up)" ;;
esac
case $cmd in
  up) up ;;
  down) cleanup; log "down" ;;
  operator)
    crane=$(tool crane) helm=$(tool helm) executor=$(tool kaniko)
    operator_binary
    install_operator
    env_lines >"$run/env"
    ;;
  status)
    pid=$(init_pid)
    if [[ -n $pid ]]; then echo "up (namespaces of PID $pid, state in $run)"; else echo "down"; exit 1; fi
    ;;
  kubectl) inns "$(tool kubernetes)/kubectl" --kubeconfig="$run/pki/admin.kubeconfig" \
    --cache-dir="$run/kube-cache" "$@" ;;
  # The caller's working directory carries over (nsenter -m would start in /).
  exec) inns /bin/bash -c "cd '$PWD' && source '$run/env' && exec \"\$@\"" bash "$@" ;;
  shell)
    # shellcheck disable=SC2016 # PS1 is the inner shell's
    inns /bin/bash --rcfile <(cat ~/.bashrc 2>/dev/null; cat "$run/env"; echo "cd '$PWD'"; echo 'PS1="(cluster) $PS1"') -i
    ;;
  env) env_lines ;;
  stop)
    name=${1:?usage: cluster.sh stop NAME [SIGNAL]} sig=${2:-TERM}
    [[ -f $run/pids/$name ]] || die "no daemon $name (see $run/pids)"
    # The PID is the namespace's: signal it from inside.
    # shellcheck disable=SC2016 # expanded by the inner shell
    inns /bin/sh -c 'pid=$(cat "$1"); kill -"$2" "$pid" 2>/dev/null || exit 0
      i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
      ! kill -0 "$pid" 2>/dev/null' sh "$run/pids/$name" "$sig" || die "$name did not stop"
    log "$name stopped ($sig)"
    ;;
  start)
    name=${1:?usage: cluster.sh start NAME}
    [[ -f $run/cmd/$name ]] || die "no daemon $name (see $run/cmd)"
    eval "cmdline=($(<"$run/cmd/$name"))"
    # shellcheck disable=SC2154
    start "$name" "${cmdline[@]}"
    log "$name started"
    ;;
  smoke)
    script=smoke.sh
    [[ ${1:-} == kaniko ]] && script=kaniko-smoke.sh
    inns /bin/bash -c "source '$run/env'; exec bash '$repo/scripts/cluster/$script'"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
