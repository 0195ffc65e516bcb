#!/usr/bin/env bash
# The whole operator on this machine, in one command: a real single-node Kubernetes cluster in
# namespaces of its own (scripts/cluster.sh: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd with runc, a kubelet, kube-proxy and a local registry), with the
# operator installed from the Helm chart as its Deployment. It then applies
# examples/configmap-app.yaml, shows `kubectl get sb -w` until the build ends, runs the built
# image as a Deployment with a Service on the node and prints the app's answer through the
# Service. The cluster stays up until Enter (or Ctrl-C), then goes down and leaves the host as
# it was.
#
#   scripts/demo.sh
#
# Needs root, a Rust toolchain and Go; the first run builds the pinned tools and the builder
# image's Debian base (network to the package registries, tens of minutes on 2 cores), later
# runs take about a minute. Nothing the cluster runs can reach beyond this machine.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export SOURCEBUILD_CACHE=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}

[[ $(id -u) -eq 0 ]] || { echo "demo.sh: run as root (the kubelet and containerd need it)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "demo.sh: needs a Rust toolchain (https://rustup.rs)" >&2; exit 1; }
command -v go >/dev/null || { echo "demo.sh: needs Go (the pinned tools are built from their modules)" >&2; exit 1; }

echo "==> building the pinned tools if needed (first run: tens of minutes; then cached)" >&2
for tool in $(scripts/tools.sh --list); do
  scripts/tools.sh "$tool" >/dev/null
done

echo "==> starting the cluster (scripts/cluster.sh up)" >&2
scripts/cluster.sh up
trap 'echo "==> stopping the cluster" >&2; scripts/cluster.sh down' EXIT
scripts/cluster.sh exec bash scripts/cluster/demo.sh

cat >&2 <<'TEXT'

==> The cluster is up. In another terminal:
      scripts/cluster.sh shell                       # kubectl, KUBECONFIG and the registry set
      scripts/cluster.sh kubectl get sourcebuilds -A
TEXT
if [[ -t 0 ]]; then
  read -r -p "Press Enter to stop the cluster. " _
fi
