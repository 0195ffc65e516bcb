#!/usr/bin/env bash
# Images the test node needs, made on this machine and pushed to the cluster's registry (run
# inside the cluster's namespaces by scripts/cluster.sh: the registry is on the pod bridge).
# crane leaves os/architecture empty in a config it makes from nothing; containerd would then
# match no platform, so every image gets `--set-platform linux/amd64`.
#
#   images.sh pause   RUN CRANE REF   RUN/bin/pause (images/pause/pause.c) as /pause
#   images.sh busybox RUN CRANE REF   Debian's static busybox as /bin/busybox with its applets
#                                     as links in /bin (sh, cat, id, ...): a small test workload
#   images.sh kaniko  RUN CRANE REF EXECUTOR
#                                     the Kaniko executor image with the published one's layout:
#                                     /kaniko/executor, CA certificates in /kaniko/ssl/certs,
#                                     DOCKER_CONFIG=/kaniko/.docker/, WORKDIR /workspace (no
#                                     cloud credential helpers)
#   images.sh operator RUN CRANE REF BINARY
#                                     the operator image: BINARY (debug info stripped) as
#                                     /sourcebuild on the distroless-like runtime of
#                                     scripts/operator-image.sh, made from this machine's own
#                                     libc6, libgcc-s1 and libstdc++6 (the libraries BINARY was
#                                     linked against); USER 65532, ENTRYPOINT /sourcebuild
set -euo pipefail

kind=${1:?usage: images.sh pause|busybox|kaniko|operator RUN CRANE REF [EXECUTOR|BINARY]} run=${2:?} crane=${3:?} ref=${4:?}
work=$(mktemp -d "$run/images/$kind.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root"
envs=() workdir=/ user="" owner=(--owner=0 --group=0)
case $kind in
  pause)
    install -m 0755 "$run/bin/pause" "$work/root/pause"
    entrypoint=/pause envs=(PATH=/)
    ;;
  busybox)
    if ! /bin/busybox --list >/dev/null 2>&1; then
      echo "images.sh: Debian's busybox-static is missing" >&2
      exit 1
    fi
    mkdir -p "$work/root/bin" "$work/root/tmp"
    install -m 0755 /bin/busybox "$work/root/bin/busybox"
    for applet in $(/bin/busybox --list); do
      [[ $applet == busybox ]] || ln -s busybox "$work/root/bin/$applet"
    done
    chmod 1777 "$work/root/tmp"
    entrypoint=/bin/sh envs=(PATH=/bin)
    ;;
  kaniko)
    executor=${5:?images.sh kaniko needs the executor (scripts/tools.sh kaniko)}
    mkdir -p "$work/root/kaniko/ssl/certs" "$work/root/kaniko/.docker" "$work/root/etc" \
      "$work/root/workspace" "$work/root/root"
    chmod 0777 "$work/root/kaniko"
    install -m 0755 "$executor" "$work/root/kaniko/executor"
    install -m 0644 /etc/ssl/certs/ca-certificates.crt "$work/root/kaniko/ssl/certs/ca-certificates.crt"
    # As upstream's files/nsswitch.conf: without it /etc/hosts (hostAliases) is not read.
    printf 'hosts: files dns\nnetworks: files\n' >"$work/root/etc/nsswitch.conf"
    entrypoint=/kaniko/executor workdir=/workspace
    envs=(HOME=/root USER=root PATH=/usr/local/bin:/kaniko SSL_CERT_DIR=/kaniko/ssl/certs
      DOCKER_CONFIG=/kaniko/.docker/)
    ;;
  operator)
    binary=${5:?images.sh operator needs the operator binary}
    log() { echo "images.sh: $*" >&2; }
    # shellcheck source=../lib/rootfs.sh
    source "$(dirname "${BASH_SOURCE[0]}")/../lib/rootfs.sh"
    build_runtime_layer "$work/root" /
    objcopy --strip-debug "$binary" "$work/root/sourcebuild"
    chmod 0755 "$work/root/sourcebuild"
    # Owners as laid out (/home/nonroot is 65532's).
    entrypoint=/sourcebuild user=65532:65532 owner=()
    envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
    ;;
  *) echo "images.sh: unknown image $kind" >&2; exit 2 ;;
esac
tar -C "$work/root" --sort=name "${owner[@]}" --numeric-owner --mtime=@0 -cf "$work/layer.tar" .
"$crane" append --insecure --oci-empty-base -f "$work/layer.tar" -t "$ref"
env_args=()
for e in "${envs[@]}"; do env_args+=(--env "$e"); done
[[ -z $user ]] || env_args+=(--user "$user")
"$crane" mutate --insecure "$ref" --set-platform linux/amd64 --entrypoint "$entrypoint" \
  --workdir "$workdir" "${env_args[@]}" -t "$ref"
"$crane" digest --insecure "$ref"
