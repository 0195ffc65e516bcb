#!/usr/bin/env bash
# Build a pinned Go tool once and print the path of its binary.
#
#   scripts/tools.sh TOOL          build tools/TOOL if needed, print the binary's path
#   scripts/tools.sh --list        list the tools this repo pins
#
# Each tool is one Go module under tools/TOOL (go.mod with a `tool` directive, go.sum
# committed) plus tools/TOOL/tool.sh, which sets TOOL_MODULE (whose version names the
# cache entry), TOOL_PACKAGE (what to build) and optionally TOOL_LDFLAGS and TOOL_CGO.
# The binary lands in
#   ${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}/tools/TOOL-VERSION/bin/TOOL
# next to a stamp holding the sha256 of go.mod, go.sum and tool.sh: a binary whose stamp
# still matches is reused without running go at all. GOCACHE and GOMODCACHE live under the
# same cache directory, so a fresh clone (CI) reuses downloads and compiled packages.
# Progress goes to stderr; stdout is only the path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}

if [[ ${1:-} == --list ]]; then
  for d in "$repo"/tools/*/; do [[ -f $d/go.mod ]] && basename "$d"; done
  exit 0
fi
if [[ $# -ne 1 || ! -f $repo/tools/${1:-}/go.mod ]]; then
  echo "usage: $0 TOOL | --list   (tools: $(cd "$repo/tools" && ls -d */ | tr -d / | tr '\n' ' '))" >&2
  exit 2
fi
tool=$1
dir=$repo/tools/$tool

# The version a go.mod of this tool requires for MODULE (read from go.mod, no go invocation).
tool_module_version() {
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$dir/go.mod"
}

TOOL_MODULE='' TOOL_PACKAGE='' TOOL_LDFLAGS='' TOOL_CGO=0
# shellcheck source=/dev/null
source "$dir/tool.sh"
version=$(tool_module_version "$TOOL_MODULE")
if [[ -z $version ]]; then
  echo "tools.sh: $TOOL_MODULE is not required in tools/$tool/go.mod" >&2
  exit 1
fi

out=$cache/tools/$tool-$version
bin=$out/bin/$tool
stamp=$(cat "$dir/go.mod" "$dir/go.sum" "$dir/tool.sh" | sha256sum | cut -d' ' -f1)
if [[ -x $bin && -f $out/stamp && $(<"$out/stamp") == "$stamp" ]]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "tools.sh: go is not installed" >&2; exit 1; }
echo "tools.sh: building $tool $version ($TOOL_PACKAGE) into $out" >&2
mkdir -p "$out/bin" "$cache/go/build" "$cache/go/mod"
start=$SECONDS
(
  cd "$dir"
  export GOCACHE=$cache/go/build GOMODCACHE=$cache/go/mod
  export GOFLAGS="-mod=readonly -trimpath -buildvcs=false" CGO_ENABLED=$TOOL_CGO
  go build -ldflags "${TOOL_LDFLAGS//$'\n'/ }" -o "$bin.tmp" "$TOOL_PACKAGE"
)
mv "$bin.tmp" "$bin"
echo "$stamp" >"$out/stamp"
echo "tools.sh: built $tool $version in $((SECONDS - start))s" >&2
echo "$bin"
