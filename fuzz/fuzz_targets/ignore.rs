//! `.s2iignore`: never a panic (regex size limits included); an error names the file and a line
//! that exists; matching never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sourcebuild::s2i::ignore::IgnoreRules;

fuzz_target!(|input: (&str, Vec<&str>)| {
    let (content, paths) = input;
    match IgnoreRules::parse(".s2iignore", content) {
        Ok(rules) => {
            for path in paths {
                let _ = rules.is_ignored(path);
            }
        }
        Err(e) => {
            let message = e.to_string();
            let line: usize = message
                .strip_prefix(".s2iignore:")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no file:line in {message:?}"));
            assert!(line >= 1 && line <= content.lines().count(), "{message}");
        }
    }
});
