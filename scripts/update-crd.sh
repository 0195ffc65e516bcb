#!/usr/bin/env bash
# Regenerates crds/ from the Rust types (`sourcebuild crd`) and copies it into the chart.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -- crd > crds/sourcebuild.dev_sourcebuilds.yaml
scripts/sync-chart-crd.sh
