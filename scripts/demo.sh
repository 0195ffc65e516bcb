#!/usr/bin/env bash
# The whole operator on this machine, in one command: a real local control plane
# (kube-apiserver, etcd, kube-controller-manager), a local OCI registry, the S2I Python builder
# image, the operator (installed from the Helm chart, running as the chart's ServiceAccount) and
# a pod runner standing in for a node's kubelet and container runtime. It then applies
# examples/configmap-app.yaml, shows `kubectl get sb -w` until the build ends, starts the built
# image's command to show its answer, prints the digest to pull with crane, and keeps it all up
# until Ctrl-C, which stops everything.
#
#   scripts/demo.sh
#
# Needs root (Kaniko runs in a throwaway root; the builder image's Debian root filesystem is made
# with debootstrap), a Rust toolchain, Go (the pinned tools are built once, the Kubernetes
# binaries take a while on the first run), git, and network access for that first run only.
# Everything else listens on 127.0.0.1.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export SOURCEBUILD_CACHE=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}

[[ $(id -u) -eq 0 ]] || { echo "demo.sh: run as root (Kaniko needs a throwaway root)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "demo.sh: needs a Rust toolchain (https://rustup.rs)" >&2; exit 1; }

echo "==> building the pinned tools if needed (first run: minutes; then cached)" >&2
for tool in etcd kubernetes crane kaniko helm; do
  scripts/tools.sh "$tool" >/dev/null
done
echo "==> building the builder image's Debian root filesystem if needed (first run: minutes)" >&2
scripts/builder-images.sh --base >/dev/null

if [[ -z ${CARGO_TARGET_DIR:-} ]]; then
  CARGO_TARGET_DIR=$SOURCEBUILD_CACHE/cargo-target-$(rustc --version | cut -d' ' -f2)
  export CARGO_TARGET_DIR
fi
echo "==> building the operator and starting the demo" >&2
exec cargo test --locked --test demo -- --ignored --exact demo --nocapture
