#!/usr/bin/env bash
# S2I Python builder images for real-build tests, made from Debian packages, no container engine.
#
#   scripts/builder-images.sh --base          build (once) the Debian root filesystem layer,
#                                             print the path of its .tar.gz
#   scripts/builder-images.sh REGISTRY_HOST   push both builder images to the plain-HTTP registry
#                                             at REGISTRY_HOST (e.g. 127.0.0.1:5000) and print one
#                                             line per image: NAME REFERENCE@DIGEST
#
# Images (scripts in tests/fixtures/builders/python/, sclorg behaviour):
#   python-sclorg   USER 1001 (passwd entry `default`, gid 0), scripts in /usr/libexec/s2i,
#                   labels scripts-url=image:///usr/libexec/s2i and destination=/tmp,
#                   HOME=/opt/app-root/src (the app directory, group 0 writable).
#   python-daeploy  no USER (root), scripts in /.s2i/bin, label scripts-url=image://.s2i/bin,
#                   app root /app_root owned by root.
#
# The base layer is `debootstrap --variant=minbase` of the machine's own Debian suite with
# python3 and pip, from the mirror the machine's apt sources name (read at run time). It is built
# once per machine (~5-10 minutes) and cached in
#   ${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}/builders/debian-python-<recipe hash>/
# next to the overlay layers (builders/<image>-<hash>/), which are rebuilt only when their
# scripts change. Overlay tarballs are byte-for-byte reproducible (sorted, mtime 0), so the same
# recipe pushes the same digests. Needs root (debootstrap, file ownership). Progress goes to
# stderr; stdout is only the result.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}
fixtures=$repo/tests/fixtures/builders/python
builders=$cache/builders

usage() {
  echo "usage: $0 --base | REGISTRY_HOST" >&2
  exit 2
}
[[ $# -eq 1 ]] || usage
[[ $(id -u) -eq 0 ]] || { echo "builder-images.sh: must run as root (debootstrap)" >&2; exit 1; }

log() { echo "builder-images.sh: $*" >&2; }
# shellcheck source=lib/rootfs.sh
source "$repo/scripts/lib/rootfs.sh"

# Everything that decides the base layer's content; its hash names the cache entry.
BASE_PACKAGES=python3,python3-pip,ca-certificates
BASE_RECIPE_VERSION=1 # bump when the steps in build_base change

build_base() {
  debootstrap_layer debian-python "$BASE_PACKAGES" "$BASE_RECIPE_VERSION"
}

# Overlay for the sclorg-style image: scripts, user 1001 and its app directories.
build_sclorg_overlay() {
  local stage=$1
  install -d -m 0755 "$stage/usr/libexec/s2i" "$stage/etc"
  install -m 0755 "$fixtures"/{assemble,run,usage} "$stage/usr/libexec/s2i/"
  cp "$base_passwd" "$stage/etc/passwd"
  echo 'default:x:1001:0:Default Application User:/opt/app-root/src:/usr/sbin/nologin' \
    >>"$stage/etc/passwd"
  chmod 0644 "$stage/etc/passwd"
  install -d -m 0775 -o 1001 -g 0 "$stage/opt/app-root" "$stage/opt/app-root/src"
}

# Overlay for the Daeploy-style image: scripts under /.s2i/bin, root-owned /app_root.
build_daeploy_overlay() {
  local stage=$1
  install -d -m 0755 "$stage/.s2i/bin" "$stage/app_root"
  install -m 0755 "$fixtures"/{assemble,run,usage} "$stage/.s2i/bin/"
}

# The overlay layer of image $1, cached by the hash of its recipe; sets overlay_layer.
build_overlay() {
  local name=$1 hash dir stage
  hash=$(cat "$fixtures"/{assemble,run,usage} "$base_layer.sha256" <(declare -f "build_${name#python-}_overlay" pack_overlay) \
    | sha256sum | cut -c1-12)
  dir=$builders/$name-$hash
  overlay_layer=$dir/layer.tar
  [[ -f $overlay_layer ]] && return 0
  mkdir -p "$builders"
  stage=$(mktemp -d "$builders/.$name.XXXXXX")
  chmod 0755 "$stage"
  "build_${name#python-}_overlay" "$stage/root"
  pack_overlay "$stage/root" "$stage/layer.tar"
  rm -rf "$builders/$name"-* # overlays of older recipes
  mkdir -p "$dir"
  mv "$stage/layer.tar" "$overlay_layer"
  rm -rf "$stage"
}

crane_() { "$crane" --insecure "$@"; }

# Push image $1 to $registry: base + overlay layers, then its config; prints NAME REF@DIGEST.
push_image() {
  local name=$1 ref digest
  shift
  build_overlay "$name"
  ref=$registry/s2i/$name:latest
  log "pushing $ref"
  crane_ append --platform linux/amd64 -f "$base_layer" -f "$overlay_layer" -t "$ref" >/dev/null
  crane_ mutate "$ref" -t "$ref" --set-platform "linux/$(dpkg --print-architecture)" "$@" >/dev/null
  digest=$(crane_ digest "$ref")
  echo "$name ${ref%:latest}@$digest"
}

mkdir -p "$builders"
exec 9>"$builders/.lock"
flock 9 # one builder at a time per machine: the base build is long and shared

build_base
[[ -f $base_layer.sha256 ]] || sha256sum "$base_layer" | cut -d' ' -f1 >"$base_layer.sha256"
base_passwd=$(dirname "$base_layer")/passwd
if [[ $1 == --base ]]; then
  echo "$base_layer"
  exit 0
fi
[[ $1 =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || usage
registry=$1
crane=$("$repo/scripts/tools.sh" crane)
path_env=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

push_image python-sclorg \
  --label io.openshift.s2i.scripts-url=image:///usr/libexec/s2i \
  --label io.openshift.s2i.destination=/tmp \
  --label io.k8s.display-name="Python 3 (sclorg-style test builder)" \
  --env STI_SCRIPTS_PATH=/usr/libexec/s2i \
  --env APP_ROOT=/opt/app-root \
  --env HOME=/opt/app-root/src \
  --env APP_SRC_DIR=/opt/app-root/src \
  --env PATH=/opt/app-root/src/.local/bin:$path_env \
  --env PYTHONUNBUFFERED=1 \
  --user 1001 \
  --workdir /opt/app-root/src \
  --cmd /usr/libexec/s2i/usage

push_image python-daeploy \
  --label io.openshift.s2i.scripts-url=image://.s2i/bin \
  --label io.k8s.display-name="Python 3 (Daeploy-style test builder)" \
  --env STI_SCRIPTS_PATH=/.s2i/bin \
  --env APP_ROOT=/app_root \
  --env APP_SRC_DIR=/app_root \
  --env PATH=$path_env \
  --env PYTHONUNBUFFERED=1 \
  --workdir /app_root \
  --cmd /.s2i/bin/usage
