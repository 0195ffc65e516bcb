#!/usr/bin/env bash
# Images the test node needs, made on this machine and pushed to the cluster's registry (run
# inside the cluster's namespaces by scripts/cluster.sh: the registry is on the pod bridge).
# crane leaves os/architecture empty in a config it makes from nothing; containerd would then
# match no platform, so every image gets `--set-platform linux/amd64`.
#
#   images.sh pause   RUN CRANE REF   RUN/bin/pause (images/pause/pause.c) as /pause
#   images.sh busybox RUN CRANE REF   Debian's static busybox as /bin/busybox with its applets
#                                     as links in /bin (sh, cat, id, ...): a small test workload
set -euo pipefail

kind=${1:?usage: images.sh pause|busybox RUN CRANE REF} run=${2:?} crane=${3:?} ref=${4:?}
work=$(mktemp -d "$run/images/$kind.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root"
case $kind in
  pause)
    install -m 0755 "$run/bin/pause" "$work/root/pause"
    entrypoint=/pause env=PATH=/
    ;;
  busybox)
    [[ -x /bin/busybox ]] && /bin/busybox --list >/dev/null || { echo "images.sh: Debian's busybox-static is missing" >&2; exit 1; }
    mkdir -p "$work/root/bin" "$work/root/tmp"
    install -m 0755 /bin/busybox "$work/root/bin/busybox"
    for applet in $(/bin/busybox --list); do
      [[ $applet == busybox ]] || ln -s busybox "$work/root/bin/$applet"
    done
    chmod 1777 "$work/root/tmp"
    entrypoint=/bin/sh env=PATH=/bin
    ;;
  *) echo "images.sh: unknown image $kind" >&2; exit 2 ;;
esac
tar -C "$work/root" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$work/layer.tar" .
"$crane" append --insecure --oci-empty-base -f "$work/layer.tar" -t "$ref"
"$crane" mutate --insecure "$ref" --set-platform linux/amd64 --entrypoint "$entrypoint" \
  --env "$env" -t "$ref"
"$crane" digest --insecure "$ref"
