//! `render_dockerfile` on structured input: never a panic; when it renders, the Dockerfile has
//! exactly the intended instruction lines, and every LABEL and ENV value decodes (double quotes,
//! `\"` `\\` `\$` escapes, nothing else special) back to the input byte for byte.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sourcebuild::s2i::dockerfile::{DockerfileSpec, render_dockerfile};

#[derive(Arbitrary, Debug)]
struct Input {
    builder_image: String,
    labels: BTreeMap<String, String>,
    env: Vec<(String, String)>,
    user: String,
    builder_user: Option<String>,
    destination: String,
    copy_scripts: bool,
    assemble: String,
    run: String,
}

/// The value of a `"..."` word with our escapes undone; `None` when it is not exactly that.
fn unquote(word: &str) -> Option<String> {
    let inner = word.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('"' | '\\' | '$') => out.push(e),
                _ => return None,
            },
            '"' | '$' | '\n' | '\r' | '\0' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

/// The arguments of a multi-line LABEL or ENV instruction starting at `lines[*at]`.
fn arguments(lines: &[&str], at: &mut usize, instruction: &str) -> Vec<String> {
    let mut args = Vec::new();
    let first = lines[*at]
        .strip_prefix(instruction)
        .and_then(|rest| rest.strip_prefix(' '))
        .unwrap_or_else(|| panic!("expected {instruction}: {:?}", lines[*at]));
    let mut line = first.to_string();
    loop {
        *at += 1;
        match line.strip_suffix(" \\") {
            Some(arg) => {
                args.push(arg.to_string());
                let indent = " ".repeat(instruction.len() + 1);
                line = lines[*at]
                    .strip_prefix(&indent)
                    .unwrap_or_else(|| panic!("bad continuation {:?}", lines[*at]))
                    .to_string();
            }
            None => {
                args.push(line);
                return args;
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let spec = DockerfileSpec {
        builder_image: input.builder_image,
        labels: input.labels,
        env: input.env,
        user: input.user,
        builder_user: input.builder_user,
        destination: input.destination,
        copy_scripts: input.copy_scripts,
        assemble: input.assemble,
        run: input.run,
    };
    let Ok(dockerfile) = render_dockerfile(&spec) else {
        return;
    };
    let lines: Vec<&str> = dockerfile.lines().collect();
    assert!(dockerfile.ends_with('\n') && !dockerfile.contains('\r'));
    let mut at = 0;
    assert_eq!(lines[at], format!("FROM {}", spec.builder_image));
    at += 1;
    if !spec.labels.is_empty() {
        let args = arguments(&lines, &mut at, "LABEL");
        let got: Vec<(String, String)> = args
            .iter()
            .map(|arg| {
                let (key, value) = arg.split_once("\"=").expect("\"key\"=value");
                (
                    key.strip_prefix('"').unwrap().to_string(),
                    unquote(value).expect(arg),
                )
            })
            .collect();
        let want: Vec<(String, String)> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want);
    }
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in &spec.env {
        match merged.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value.clone(),
            None => merged.push((name.clone(), value.clone())),
        }
    }
    if !merged.is_empty() {
        let args = arguments(&lines, &mut at, "ENV");
        let got: Vec<(String, String)> = args
            .iter()
            .map(|arg| {
                let (name, value) = arg.split_once('=').expect("NAME=value");
                (name.to_string(), unquote(value).expect(arg))
            })
            .collect();
        assert_eq!(got, merged);
    }
    let rest: Vec<&str> = lines[at..]
        .iter()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let copies = 1 + usize::from(spec.copy_scripts);
    assert!(
        rest.iter().take(copies).all(|i| *i == "COPY"),
        "{dockerfile}"
    );
    let tail = &rest[copies..];
    assert!(
        tail == ["RUN", "CMD"] || tail == ["USER", "RUN", "CMD"],
        "{dockerfile}"
    );
});
