//! The checked-in CRD must be exactly what `sourcebuild crd` prints (the chart's copy is checked
//! by `scripts/test.sh crd`). Regenerate both with `scripts/update-crd.sh`.

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
