//! `.s2i/environment`: never a panic; an error names the file and a line that exists; whatever
//! is accepted can be written into the Dockerfile, one ENV word per name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sourcebuild::s2i::dockerfile::{DockerfileSpec, render_dockerfile};
use sourcebuild::s2i::environment::parse_environment;

fuzz_target!(|data: &[u8]| {
    let Ok(content) = std::str::from_utf8(data) else {
        return;
    };
    match parse_environment(".s2i/environment", content) {
        Ok(pairs) => {
            for (name, value) in &pairs {
                assert!(sourcebuild::s2i::is_valid_env_name(name), "{name:?}");
                assert!(!value.contains(['\n', '\r', '\0']), "{value:?}");
            }
            let spec = DockerfileSpec {
                builder_image: "builder:1".into(),
                env: pairs.clone(),
                user: "1001".into(),
                destination: "/tmp".into(),
                assemble: "/usr/libexec/s2i/assemble".into(),
                run: "/usr/libexec/s2i/run".into(),
                ..Default::default()
            };
            let dockerfile = render_dockerfile(&spec).expect("accepted pairs must render");
            let names: std::collections::HashSet<_> = pairs.iter().map(|(n, _)| n).collect();
            // FROM, ENV (one line per distinct name), COPY, USER, RUN, CMD.
            let want = 5 + names.len().max(usize::from(!names.is_empty()));
            assert_eq!(dockerfile.lines().count(), want, "{dockerfile}");
        }
        Err(e) => {
            let message = e.to_string();
            let line: usize = message
                .strip_prefix(".s2i/environment:")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no file:line in {message:?}"));
            assert!(line >= 1 && line <= content.lines().count(), "{message}");
        }
    }
});
