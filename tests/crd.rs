//! The checked-in CRD must be exactly what `sourcebuild crd` prints, and the chart's copy the same.
//! Regenerate both with `scripts/update-crd.sh`.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn checked_in_crd_is_current() {
    let generated = sourcebuild::crd::crd_yaml().unwrap();
    assert!(
        read("crds/sourcebuild.dev_sourcebuilds.yaml") == generated,
        "crds/sourcebuild.dev_sourcebuilds.yaml is stale: run scripts/update-crd.sh"
    );
}

#[test]
fn chart_crd_matches_the_generated_one() {
    let generated = sourcebuild::crd::crd_yaml().unwrap();
    assert!(
        read("charts/sourcebuild-operator/crds/sourcebuild.dev_sourcebuilds.yaml") == generated,
        "the chart's CRD copy is stale: run scripts/update-crd.sh"
    );
}
