#!/usr/bin/env bash
# Keep the chart's CRD a byte-for-byte copy of crds/ (which `sourcebuild crd` generates).
#   scripts/sync-chart-crd.sh           copy crds/*.yaml into charts/sourcebuild-operator/crds/
#   scripts/sync-chart-crd.sh --check   exit 1 (with a diff) when they differ
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$repo/crds
dst=$repo/charts/sourcebuild-operator/crds

if [[ ${1:-} == --check ]]; then
  if diff -ru "$src" "$dst"; then
    echo "chart CRDs match crds/"
  else
    echo "charts/sourcebuild-operator/crds differs from crds/: run scripts/sync-chart-crd.sh" >&2
    exit 1
  fi
else
  rm -f "$dst"/*.yaml
  cp "$src"/*.yaml "$dst"/
  echo "copied $(cd "$src" && ls ./*.yaml | wc -l) CRD file(s) into ${dst#"$repo"/}"
fi
