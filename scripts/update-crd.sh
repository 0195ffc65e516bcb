#!/usr/bin/env bash
# Regenerates the CRD from the Rust types into crds/ and the chart's crds/ copy.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -- crd > crds/sourcebuild.dev_sourcebuilds.yaml
mkdir -p charts/sourcebuild-operator/crds
cp crds/sourcebuild.dev_sourcebuilds.yaml charts/sourcebuild-operator/crds/sourcebuild.dev_sourcebuilds.yaml
echo "updated crds/ and charts/sourcebuild-operator/crds/"
