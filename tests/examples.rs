//! Every example manifest parses, validates, and renders a build Pod.

use std::path::Path;

use sourcebuild::pod::BuildSettings;
use sourcebuild::render::{load_source_build, render_pod};

#[test]
fn examples_are_valid_source_builds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let sb = load_source_build(&path).unwrap_or_else(|e| panic!("{e}"));
            let settings = BuildSettings {
                default_builder_image: "quay.io/sclorg/python-312-c9s:c9s".into(),
                kaniko_image: "kaniko:test".into(),
                prepare_image: "sourcebuild-operator:test".into(),
                insecure_registries: vec![],
                user_namespaces: false,
                signing_key_secret: None,
                builder_id: "https://sourcebuild.dev/tests".to_string(),
            };
            let pod =
                render_pod(&sb, &settings).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(pod.contains("kind: Pod"), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected at least three examples, found {seen}");
}
