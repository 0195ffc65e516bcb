#!/usr/bin/env bash
# Stand-ins for the two base images of the operator's Dockerfile, assembled from Debian packages
# and this machine's Rust toolchain, so that the real Dockerfile can be built by Kaniko here,
# where no public image registry is reachable (tests/operator_image.rs).
#
#   scripts/operator-image.sh REGISTRY_HOST
#
# pushes both to the plain-HTTP registry at REGISTRY_HOST (e.g. 127.0.0.1:5000) and prints:
#
#   rust REF@DIGEST      for `rust:<version>-slim-bookworm`: Debian minbase of the machine's suite
#                        with gcc, libc6-dev and ca-certificates, plus rustc and cargo (host
#                        target only) of exactly the version the Dockerfile pins, in
#                        /usr/local/rust/bin on PATH.
#   runtime REF@DIGEST   for `gcr.io/distroless/cc-debian12:nonroot`: only the files of the Debian
#                        packages libc6, libgcc-s1 and libstdc++6, the CA bundle, /etc/passwd and
#                        /etc/group with root, nobody and nonroot (65532), /tmp and
#                        /home/nonroot; USER 65532, as distroless has. No shell.
#
# The layers are cached in ${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}/builders/
# (the Debian layer is built once per machine, minutes) and are reproducible. Needs root.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}
builders=$cache/builders

usage() {
  echo "usage: $0 REGISTRY_HOST" >&2
  exit 2
}
[[ $# -eq 1 && $1 =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || usage
[[ $(id -u) -eq 0 ]] || { echo "operator-image.sh: must run as root (debootstrap)" >&2; exit 1; }
registry=$1

log() { echo "operator-image.sh: $*" >&2; }
# shellcheck source=lib/rootfs.sh
source "$repo/scripts/lib/rootfs.sh"

# The Rust version the Dockerfile's build stage pins (ARG RUST_IMAGE=rust:<version>-...): the
# stand-in must be that version, or the build would not be the one the Dockerfile describes.
rust_version=$(sed -n 's/^ARG RUST_IMAGE=rust:\([0-9.]*\)-.*/\1/p' "$repo/Dockerfile")
[[ -n $rust_version ]] || { log "no 'ARG RUST_IMAGE=rust:<version>-...' line in the Dockerfile"; exit 1; }
sysroot=$(rustc "+$rust_version" --print sysroot 2>/dev/null || rustc --print sysroot)
have=$("$sysroot/bin/rustc" --version | cut -d' ' -f2)
[[ $have == "$rust_version" ]] || {
  log "the Dockerfile pins Rust $rust_version but this machine's toolchain is $have"
  exit 1
}
host_target=$("$sysroot/bin/rustc" -vV | sed -n 's/^host: //p')

mkdir -p "$builders"
exec 9>"$builders/.lock"
flock 9 # one image assembly at a time per machine: the Debian layer is long and shared

debootstrap_layer debian-rust-build gcc,libc6-dev,ca-certificates 1
build_layer=$base_layer

# rustc and cargo of the pinned version, for the host target only: no docs, no sources.
# Kept gzipped (gzip -n: no name or time, so reproducible): crane would compress 600 MB on
# every push otherwise.
toolchain_layer=$builders/rust-toolchain-$rust_version-$host_target/layer.tar.gz
if [[ ! -f $toolchain_layer ]]; then
  log "packing Rust $rust_version ($host_target) from $sysroot"
  stage=$(mktemp -d "$builders/.rust-toolchain.XXXXXX")
  install -d -m 0755 "$stage/root/usr/local/rust/bin" "$stage/root/usr/local/rust/lib/rustlib"
  cp -a "$sysroot/bin/rustc" "$sysroot/bin/cargo" "$stage/root/usr/local/rust/bin/"
  cp -a "$sysroot"/lib/*.so* "$stage/root/usr/local/rust/lib/"
  cp -a "$sysroot/lib/rustlib/$host_target" "$sysroot/lib/rustlib/etc" "$stage/root/usr/local/rust/lib/rustlib/"
  pack_overlay "$stage/root" "$stage/layer.tar"
  gzip -n "$stage/layer.tar"
  rm -rf "$builders"/rust-toolchain-*
  mkdir -p "$(dirname "$toolchain_layer")"
  mv "$stage/layer.tar.gz" "$toolchain_layer"
  rm -rf "$stage"
fi

runtime_hash=$( (cat "$build_layer.sha256" 2>/dev/null || sha256sum "$build_layer") |
  cat - <(declare -f build_runtime_layer pack_overlay) | sha256sum | cut -c1-12)
runtime_layer=$builders/runtime-cc-$runtime_hash/layer.tar
if [[ ! -f $runtime_layer ]]; then
  log "assembling the distroless-like runtime layer"
  stage=$(mktemp -d "$builders/.runtime-cc.XXXXXX")
  mkdir -p "$stage/unpacked" "$stage/root"
  chmod 0755 "$stage/root"
  tar --numeric-owner -xzf "$build_layer" -C "$stage/unpacked"
  build_runtime_layer "$stage/root" "$stage/unpacked"
  pack_overlay "$stage/root" "$stage/layer.tar"
  rm -rf "$builders"/runtime-cc-*
  mkdir -p "$(dirname "$runtime_layer")"
  mv "$stage/layer.tar" "$runtime_layer"
  rm -rf "$stage"
fi

crane=$("$repo/scripts/tools.sh" crane)
crane_() { "$crane" --insecure "$@"; }
platform=linux/$(dpkg --print-architecture)
path_env=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# push NAME REF_PATH LAYER... -- MUTATE_FLAGS...: prints NAME REF@DIGEST.
push() {
  local name=$1 ref=$registry/$2 layers=() digest
  shift 2
  while [[ $1 != -- ]]; do layers+=(-f "$1"); shift; done
  shift
  log "pushing $ref"
  crane_ append --platform "$platform" "${layers[@]}" -t "$ref" >/dev/null
  crane_ mutate "$ref" -t "$ref" --set-platform "$platform" "$@" >/dev/null
  digest=$(crane_ digest "$ref")
  echo "$name ${ref%:*}@$digest"
}

push rust "stand-in/rust:$rust_version-slim" "$build_layer" "$toolchain_layer" -- \
  --env "PATH=/usr/local/rust/bin:$path_env" --env "RUST_VERSION=$rust_version" --cmd bash
push runtime stand-in/distroless-cc:nonroot "$runtime_layer" -- \
  --env "PATH=$path_env" --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --user 65532 --workdir /home/nonroot
