# Shared by the scripts that assemble test images from Debian packages without a container
# engine (builder-images.sh, operator-image.sh). Source it after defining `log`; it needs
# `$builders` (the cache directory for layers). Needs root (debootstrap, file ownership).

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

# debootstrap_layer NAME PACKAGES RECIPE_VERSION: a `debootstrap --variant=minbase` root
# filesystem of the machine's own Debian suite with PACKAGES, as one gzipped layer, built once and
# cached in $builders/NAME-<recipe hash>/. Sets base_layer (the .tar.gz) and base_dir (beside it:
# recipe, passwd). Bump RECIPE_VERSION when the steps below change.
debootstrap_layer() {
  local name=$1 packages=$2 recipe_version=$3
  read_apt_source
  local recipe hash dir tmp
  recipe="v$recipe_version suite=$suite variant=minbase include=$packages arch=$(dpkg --print-architecture)"
  hash=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
  dir=$builders/$name-$hash
  base_layer=$dir/layer.tar.gz
  base_dir=$dir
  if [[ -f $base_layer && -f $dir/recipe ]]; then return 0; fi
  command -v debootstrap >/dev/null || {
    log "installing debootstrap with apt-get"
    apt-get install -y -q debootstrap >&2 || { apt-get update -q >&2 && apt-get install -y -q debootstrap >&2; }
  }
  local start=$SECONDS
  log "building the Debian $suite root filesystem ($recipe) from the machine's apt mirror; this takes minutes once"
  mkdir -p "$builders"
  tmp=$(mktemp -d "$builders/.$name-$hash.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  debootstrap --variant=minbase --include="$packages" ${keyring:+--keyring="$keyring"} \
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

# build_runtime_layer STAGE ROOT: the distroless-like runtime (cc-debian12:nonroot) into STAGE:
# the files ROOT's dpkg database says libc6, libgcc-s1 and libstdc++6 own (ROOT: an unpacked
# Debian layer, or / for this machine's own libraries), the CA bundle, passwd and group with
# root, nobody and nonroot (65532), /tmp and /home/nonroot. No shell.
build_runtime_layer() {
  local stage=$1 unpacked=$2 pkg list candidate path link
  install -d -m 0755 "$stage/etc/ssl/certs" "$stage/home"
  install -d -m 1777 "$stage/tmp"
  install -d -m 0700 -o 65532 -g 65532 "$stage/home/nonroot"
  install -d -m 0700 "$stage/root"
  # The merged-/usr links first (/lib64 -> usr/lib64, ...): the packages' lists name paths
  # through them, and the loader path goes through them.
  for link in bin lib lib64 sbin; do
    if [[ -L $unpacked/$link ]]; then
      install -d -m 0755 "$stage/usr/$link"
      cp -a "$unpacked/$link" "$stage/"
    fi
  done
  for pkg in libc6 libgcc-s1 libstdc++6; do
    list=''
    for candidate in "$unpacked/var/lib/dpkg/info/$pkg.list" "$unpacked/var/lib/dpkg/info/$pkg":*.list; do
      [[ -f $candidate ]] && { list=$candidate; break; }
    done
    [[ -n $list ]] || { log "package $pkg is not in the Debian layer"; exit 1; }
    # Files and links only (directories come with them); paths are absolute in the list.
    while IFS= read -r path; do
      [[ -z $path || -d $unpacked$path && ! -L $unpacked$path ]] && continue
      [[ -e $unpacked$path || -L $unpacked$path ]] || continue
      (cd "$unpacked" && cp -a --parents ".$path" "$stage/")
    done <"$list"
  done
  cp "$unpacked/etc/ssl/certs/ca-certificates.crt" "$stage/etc/ssl/certs/"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$stage/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$stage/etc/group"
  chmod 0644 "$stage/etc/passwd" "$stage/etc/group"
}
