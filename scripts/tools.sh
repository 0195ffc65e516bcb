#!/usr/bin/env bash
# Build or install a pinned tool once and print the path of its binary.
#
#   scripts/tools.sh TOOL          build/install tools/TOOL if needed, print the binary's path
#   scripts/tools.sh --list        list the tools this repo pins
#
# Every tool is a directory tools/TOOL holding tool.sh (sourced: sets what to build) and
# its pins, in one of two flavours:
#   Go:  go.mod (a `tool` directive, or a main package of ours beside it: its *.go files
#        count as pins) + go.sum, committed. tool.sh sets TOOL_MODULE (the
#        required module whose version names the cache entry), TOOL_PACKAGE (the main
#        package to build), optionally TOOL_LDFLAGS, TOOL_TAGS (build tags, comma-separated)
#        and TOOL_CGO (default 0; 1 needs gcc and the C libraries .ci/run installs).
#        A tool that builds several binaries sets TOOL_PACKAGES (whitespace-separated main
#        packages) instead of TOOL_PACKAGE; each lands in bin/ under its last path element,
#        and the printed path is then that bin/ directory.
#   pip: requirements.txt (exact == pins). tool.sh sets TOOL_MODULE (the PyPI project whose
#        pin names the cache entry) and TOOL_BIN (the program in the venv's bin/).
# The result lands in
#   ${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}/tools/TOOL-VERSION/bin/TOOL
# (bin/NAME for each of TOOL_PACKAGES)
# next to a stamp holding the sha256 of the pin files: a tool whose stamp still matches
# is reused without running go or pip. GOCACHE and GOMODCACHE live under the same cache
# directory, so a fresh clone (CI) reuses downloads and compiled packages.
# Progress goes to stderr; stdout is only the path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}

list_tools() {
  local d
  for d in "$repo"/tools/*/; do [[ -f $d/tool.sh ]] && basename "$d"; done
}
if [[ ${1:-} == --list ]]; then
  list_tools
  exit 0
fi
if [[ $# -ne 1 || ! -f $repo/tools/${1:-}/tool.sh ]]; then
  echo "usage: $0 TOOL | --list   (tools: $(list_tools | tr '\n' ' '))" >&2
  exit 2
fi
tool=$1
dir=$repo/tools/$tool
# A tool of our own (a main package in its directory) has its sources among the pins, so an edit
# rebuilds it.
shopt -s nullglob
if [[ -f $dir/go.mod ]]; then flavour=go; pins=("$dir/go.mod" "$dir/go.sum" "$dir"/*.go); else flavour=pip; pins=("$dir/requirements.txt" "$repo/scripts/tools.sh"); fi
shopt -u nullglob

# The version tools/TOOL pins for MODULE (read from the pin file, no go or pip run).
tool_module_version() {
  if [[ $flavour == go ]]; then
    awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }
                   $1 == "require" && $2 == m { print $3; exit }' "$dir/go.mod"
  else
    awk -F'==' -v m="$1" 'tolower($1) == tolower(m) { sub(/[ ;].*/, "", $2); print $2; exit }' \
      "$dir/requirements.txt"
  fi
}

TOOL_MODULE='' TOOL_PACKAGE='' TOOL_PACKAGES='' TOOL_LDFLAGS='' TOOL_TAGS='' TOOL_CGO=0 TOOL_BIN=$tool
# shellcheck source=/dev/null
source "$dir/tool.sh"
version=$(tool_module_version "$TOOL_MODULE")
if [[ -z $version ]]; then
  echo "tools.sh: tools/$tool does not pin $TOOL_MODULE" >&2
  exit 1
fi

out=$cache/tools/$tool-$version
bin=$out/bin/$tool
bins=("$bin")
if [[ -n $TOOL_PACKAGES ]]; then
  bins=()
  for p in $TOOL_PACKAGES; do bins+=("$out/bin/${p##*/}"); done
  bin=$out/bin
fi
stamp=$(cat "${pins[@]}" "$dir/tool.sh" | sha256sum | cut -d' ' -f1)
all_built() {
  local b
  for b in "${bins[@]}"; do [[ -x $b ]] || return 1; done
}
if all_built && [[ -f $out/stamp && $(<"$out/stamp") == "$stamp" ]]; then
  echo "$bin"
  exit 0
fi

start=$SECONDS
rm -rf "$out"
mkdir -p "$out/bin"
if [[ $flavour == go ]]; then
  command -v go >/dev/null || { echo "tools.sh: go is not installed" >&2; exit 1; }
  echo "tools.sh: building $tool $version (${TOOL_PACKAGE:-${TOOL_PACKAGES//$'\n'/}}) into $out" >&2
  mkdir -p "$cache/go/build" "$cache/go/mod"
  (
    cd "$dir"
    export GOCACHE=$cache/go/build GOMODCACHE=$cache/go/mod CGO_ENABLED=$TOOL_CGO
    # readonly: go.sum must already be complete; nothing is resolved at build time.
    export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
    if [[ -n $TOOL_PACKAGES ]]; then
      # One go build for all: shared packages compile once. -o DIR/ names each by its package.
      # shellcheck disable=SC2086
      go build -tags "$TOOL_TAGS" -ldflags "${TOOL_LDFLAGS//$'\n'/ }" -o "$out/bin.tmp/" $TOOL_PACKAGES
    else
      go build -tags "$TOOL_TAGS" -ldflags "${TOOL_LDFLAGS//$'\n'/ }" -o "$bin.tmp" "$TOOL_PACKAGE"
    fi
  )
  if [[ -n $TOOL_PACKAGES ]]; then
    mv "$out/bin.tmp"/* "$out/bin/" && rmdir "$out/bin.tmp"
  else
    mv "$bin.tmp" "$bin"
  fi
else
  echo "tools.sh: installing $tool ($TOOL_MODULE $version) into $out/venv" >&2
  python3 -m venv "$out/venv"
  "$out/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$dir/requirements.txt" >&2
  # A wrapper, not a symlink: a venv's python only finds its venv when started by that path.
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$out/venv/bin/$TOOL_BIN" >"$bin"
  chmod +x "$bin"
fi
echo "$stamp" >"$out/stamp"
echo "tools.sh: $tool $version ready in $((SECONDS - start))s" >&2
echo "$bin"
