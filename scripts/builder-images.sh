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

# The first deb stanza of the machine's apt sources (deb822 *.sources, else a one-line
# sources.list entry): sets mirror, suite and keyring. Nothing about the mirror is hard-coded.
read_apt_source() {
  mirror='' suite='' keyring=''
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # shellcheck disable=SC2046
    read -r mirror suite keyring < <(awk '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; key = ""
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/) continue
          if (line ~ /^Types:/) { sub(/^Types:[ \t]*/, "", line); types = line }
          if (line ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line); split(line, u, /[ \t]+/); uris = u[1] }
          if (line ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", line); split(line, s, /[ \t]+/); suites = s[1] }
          if (line ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/, "", line); key = line }
        }
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "" && suites != "" && suites !~ /-security$/) {
          print uris, suites, (key == "" ? "-" : key); exit
        }
      }' "$f") || true
    [[ -n $mirror ]] && break
  done
  if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
    read -r mirror suite < <(awk '$1 == "deb" {
        i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) !~ /-security$/) { print $i, $(i + 1); exit } }' /etc/apt/sources.list) || true
    keyring=-
  fi
  [[ -n $mirror && -n $suite ]] || { log "no Debian mirror found in the apt sources"; exit 1; }
  [[ $keyring == - || ! -f $keyring ]] && keyring=''
  return 0
}

# The top-level entries of directory $1, NUL-separated: a layer's paths carry no "./" prefix.
top_entries() {
  find "$1" -mindepth 1 -maxdepth 1 -printf '%P\0'
}

# Everything that decides the base layer's content; its hash names the cache entry.
BASE_PACKAGES=python3,python3-pip,ca-certificates
BASE_RECIPE_VERSION=1 # bump when the steps in build_base change

build_base() {
  read_apt_source
  local recipe hash dir tmp
  recipe="v$BASE_RECIPE_VERSION suite=$suite variant=minbase include=$BASE_PACKAGES arch=$(dpkg --print-architecture)"
  hash=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
  dir=$builders/debian-python-$hash
  base_layer=$dir/layer.tar.gz
  if [[ -f $base_layer && -f $dir/recipe ]]; then return 0; fi
  command -v debootstrap >/dev/null || {
    log "installing debootstrap with apt-get"
    apt-get install -y -q debootstrap >&2 || { apt-get update -q >&2 && apt-get install -y -q debootstrap >&2; }
  }
  local start=$SECONDS
  log "building the Debian $suite root filesystem ($recipe) from the machine's apt mirror; this takes minutes once"
  mkdir -p "$builders"
  tmp=$(mktemp -d "$builders/.debian-python-$hash.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  debootstrap --variant=minbase --include="$BASE_PACKAGES" ${keyring:+--keyring="$keyring"} \
    "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2
    log "debootstrap failed (log above)"
    exit 1
  }
  # An image's filesystem: no package caches or lists, no docs, empty /dev (the runtime fills
  # it), no host-specific files.
  (
    cd "$tmp/rootfs"
    rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
      usr/share/doc/* usr/share/man/* usr/share/info/* var/log/*.log var/log/apt/* \
      dev/* proc/* sys/* run/* tmp/* etc/hostname etc/resolv.conf
    chmod 1777 tmp
    : >etc/resolv.conf
  )
  tar --numeric-owner --sort=name -C "$tmp/rootfs" -czf "$tmp/layer.tar.gz" \
    --null -T <(top_entries "$tmp/rootfs")
  echo "$recipe" >"$tmp/recipe"
  rm -rf "$dir"
  mkdir -p "$dir"
  mv "$tmp/layer.tar.gz" "$tmp/recipe" "$dir/"
  cp "$tmp/rootfs/etc/passwd" "$dir/passwd"
  rm -rf "$tmp"
  trap - EXIT
  log "base layer $base_layer ready in $((SECONDS - start))s ($(du -h "$base_layer" | cut -f1))"
}

# A reproducible layer tarball of the staging directory $1 into $2.
pack_overlay() {
  tar --numeric-owner --sort=name --mtime=@0 --format=gnu -C "$1" -cf "$2" \
    --null -T <(top_entries "$1")
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
