//! Hostile input: property tests of everything a SourceBuild or a source tree can put into the
//! generated Dockerfile, checked with BuildKit's own parser, and the source-tree and archive
//! cases an attacker controls.
//!
//! The property tests generate a batch of inputs with `proptest`, render what our code accepts,
//! and hand every Dockerfile of the batch to one Python process running BuildKit's parser (the
//! `dockerfile` package, `tools/dockerfile-parser`, via `scripts/parse-dockerfiles.py`). For every
//! input, either our code refused it with an error naming the field or `file:line`, or the
//! Dockerfile holds exactly the intended instructions and every ENV and LABEL word evaluates, under
//! BuildKit's quoting rules, to the input byte for byte with nothing expanded.
//!
//! `PROPTEST_CASES` sets the number of cases per property (default 300); each test prints how
//! many ran, how many were refused and how long the batch took.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sourcebuild::api::{EnvVar, GitSource, Source, SourceBuildSpec};
use sourcebuild::contract::PrepareRequest;
use sourcebuild::prepare::{PrepareError, build_labels, prepare_workspace};
use sourcebuild::s2i::context::{ContextError, lay_out_context};
use sourcebuild::s2i::dockerfile::{DockerfileSpec, render_dockerfile};
use sourcebuild::s2i::environment::parse_environment;
use sourcebuild::s2i::ignore::IgnoreRules;
use sourcebuild::source::{ArchiveError, ArchiveLimits, FetchedSource, archive::unpack_archive};

const DEFAULT_CASES: u32 = 300;
const DEFAULT_BUILDER: &str = "quay.io/sclorg/python-312-c9s:c9s";

// --- BuildKit's parser, once per batch --------------------------------------------------------

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The python of `tools/dockerfile-parser`, installed by `scripts/tools.sh` on first use.
fn parser_python() -> PathBuf {
    let output = Command::new(repo_root().join("scripts/tools.sh"))
        .arg("dockerfile-parser")
        .output()
        .expect("running scripts/tools.sh dockerfile-parser");
    assert!(
        output.status.success(),
        "scripts/tools.sh dockerfile-parser failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// One instruction as BuildKit's parser returns it: raw words, nothing evaluated.
#[derive(Debug, serde::Deserialize)]
struct Instruction {
    cmd: String,
    json: bool,
    flags: Vec<String>,
    value: Vec<String>,
    heredocs: usize,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Parsed {
    Ok(Vec<Instruction>),
    Error(String),
}

/// Parses every Dockerfile with one Python process.
fn parse_batch(dockerfiles: &[String]) -> Vec<Parsed> {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    std::fs::write(&cases, serde_json::to_vec(dockerfiles).unwrap()).unwrap();
    let output = Command::new(parser_python())
        .arg(repo_root().join("scripts/parse-dockerfiles.py"))
        .arg(&cases)
        .output()
        .expect("running scripts/parse-dockerfiles.py");
    assert!(
        output.status.success(),
        "parse-dockerfiles.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<Parsed> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(parsed.len(), dockerfiles.len());
    parsed
}

/// Evaluates one word the way BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`) does
/// for ENV and LABEL, with an empty environment: an unescaped `$` is an error here, because it
/// would expand a variable.
fn eval_word(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    None => return Err(format!("unterminated double quote in {raw:?}")),
                    Some('"') => break,
                    // Inside double quotes only `"`, `$` and `\` can be escaped.
                    Some('\\') => match chars.peek() {
                        Some('"' | '$' | '\\') => out.push(chars.next().unwrap()),
                        _ => out.push('\\'),
                    },
                    Some('$') => return Err(format!("unescaped '$' would expand in {raw:?}")),
                    Some(other) => out.push(other),
                }
            },
            '\'' => loop {
                match chars.next() {
                    None => return Err(format!("unterminated single quote in {raw:?}")),
                    Some('\'') => break,
                    Some(other) => out.push(other),
                }
            },
            '\\' => match chars.next() {
                None => return Err(format!("trailing backslash in {raw:?}")),
                Some(other) => out.push(other),
            },
            '$' => return Err(format!("unescaped '$' would expand in {raw:?}")),
            other => out.push(other),
        }
    }
    Ok(out)
}

#[test]
fn the_lexer_model_matches_buildkit_on_known_words() {
    assert_eq!(eval_word(r#""a\"b\\c\$d\xe""#).unwrap(), r#"a"b\c$d\xe"#);
    assert_eq!(eval_word(r#"'a\b'"#).unwrap(), r"a\b");
    assert_eq!(eval_word(r"a\ b").unwrap(), "a b");
    assert!(eval_word("\"$HOME\"").is_err());
    assert!(eval_word("${X}").is_err());
}

/// Pairs of evaluated words of an ENV or LABEL instruction.
fn eval_pairs(instruction: &Instruction) -> Result<Vec<(String, String)>, String> {
    if !instruction.value.len().is_multiple_of(2) {
        return Err(format!("odd number of words: {:?}", instruction.value));
    }
    instruction
        .value
        .chunks(2)
        .map(|pair| Ok((eval_word(&pair[0])?, eval_word(&pair[1])?)))
        .collect()
}

/// Each name once, at its first place, with its last value: how `render_dockerfile` is meant to
/// apply `.s2i/environment` then `spec.env`. Written independently of the product's `merge_env`.
fn expected_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut order: Vec<String> = Vec::new();
    let mut last: HashMap<&str, &str> = HashMap::new();
    for (name, value) in env {
        if !last.contains_key(name.as_str()) {
            order.push(name.clone());
        }
        last.insert(name, value);
    }
    order
        .into_iter()
        .map(|name| {
            let value = last[name.as_str()].to_string();
            (name, value)
        })
        .collect()
}

fn is_root(user: &str) -> bool {
    matches!(user.split(':').next().unwrap(), "" | "0" | "root")
}

/// Checks one parsed Dockerfile against the spec it was rendered from; `Err` says what is off.
fn check_dockerfile(spec: &DockerfileSpec, parsed: &Parsed) -> Result<(), String> {
    let instructions = match parsed {
        Parsed::Ok(list) => list,
        Parsed::Error(e) => return Err(format!("BuildKit cannot parse it: {e}")),
    };
    let mut it = instructions.iter();
    let mut next = |cmd: &str| -> Result<&Instruction, String> {
        let got = it.next().ok_or(format!("missing {cmd}"))?;
        if got.cmd.to_uppercase() != cmd {
            return Err(format!("expected {cmd}, found {got:?}"));
        }
        if got.heredocs != 0 {
            return Err(format!("unexpected heredoc in {got:?}"));
        }
        Ok(got)
    };
    let from = next("FROM")?;
    if from.value != [spec.builder_image.clone()] || !from.flags.is_empty() {
        return Err(format!("FROM is {from:?}"));
    }
    if !spec.labels.is_empty() {
        let labels = eval_pairs(next("LABEL")?)?;
        let want: Vec<(String, String)> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if labels != want {
            return Err(format!("LABEL evaluates to {labels:?}, want {want:?}"));
        }
    }
    let want_env = expected_env(&spec.env);
    if !want_env.is_empty() {
        let env = eval_pairs(next("ENV")?)?;
        if env != want_env {
            return Err(format!("ENV evaluates to {env:?}, want {want_env:?}"));
        }
    }
    // Image paths are taken without a trailing '/' ("/" stays "/").
    let normal = |p: &str| {
        if p == "/" {
            p.to_string()
        } else {
            p.trim_end_matches('/').to_string()
        }
    };
    let dest = spec.destination.trim_end_matches('/');
    let chown = if spec.user.contains(':') {
        format!("--chown={}", spec.user)
    } else {
        format!("--chown={}:0", spec.user)
    };
    if spec.copy_scripts {
        let copy = next("COPY")?;
        if copy.flags != [chown.clone()]
            || copy.value != ["upload/scripts".to_string(), format!("{dest}/scripts")]
        {
            return Err(format!("COPY scripts is {copy:?}"));
        }
    }
    let copy = next("COPY")?;
    if copy.flags != [chown] || copy.value != ["upload/src".to_string(), format!("{dest}/src")] {
        return Err(format!("COPY src is {copy:?}"));
    }
    let builder_differs = spec
        .builder_user
        .as_deref()
        // Root spelled with another group (`:f`, `0:5`) is another account: USER is written.
        .is_some_and(|b| !sourcebuild::s2i::scripts::same_user(b, &spec.user));
    if !is_root(&spec.user) || builder_differs {
        let user = next("USER")?;
        if user.value != [spec.user.clone()] {
            return Err(format!("USER is {user:?}"));
        }
    }
    let run = next("RUN")?;
    if !run.json || run.value != [normal(&spec.assemble)] || !run.flags.is_empty() {
        return Err(format!("RUN is {run:?}"));
    }
    let cmd = next("CMD")?;
    if !cmd.json || cmd.value != [normal(&spec.run)] {
        return Err(format!("CMD is {cmd:?}"));
    }
    if let Some(extra) = it.next() {
        return Err(format!("an instruction too many: {extra:?}"));
    }
    Ok(())
}

// --- strategies ---------------------------------------------------------------------------

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Strings made to break quoting: newlines, quotes, `$`, backslashes, NUL, line continuations,
/// comment and heredoc markers, unicode spaces and line separators; or anything at all.
fn hostile() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "(?s)[a-zA-Z0-9 \t\n\r\"'`$\\\\{}()\0#=:@/.<>;|&*!-]{0,24}",
        2 => "[a-z]{0,6}(\\\\|\\$|\"|\\\\\n|\\$\\{[A-Z]+\\}|\\$\\(id\\)|\n[A-Z]+ x|<<EOF|\\\\|\r|\0)[a-z]{0,6}",
        1 => "[\u{85}\u{a0}\u{2028}\u{2029}\u{feff}\u{1680}é☃𝄞\u{0}-\u{1f}\u{7f}a\\\\\"$ ]{0,12}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// Mostly values a Dockerfile word can carry (everything but LF, CR and NUL) yet made to break
/// quoting, sometimes fully hostile ones.
fn value() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 \t\"'`$\\\\{}()#=:@/.<>;|&*!-]{0,24}",
        2 => "[a-z]{0,6}(\\\\|\\$|\"|\\\\ |\\$\\{[A-Z]+\\}|\\$\\(id\\)|<<EOF| \\\\ RUN x)[a-z]{0,6}",
        2 => any::<String>().prop_map(|s| s.replace(['\n', '\r', '\0'], "")),
        1 => hostile(),
    ]
    .boxed()
}

fn env_name() -> BoxedStrategy<String> {
    prop_oneof![9 => "[A-Za-z_][A-Za-z0-9_]{0,8}", 1 => hostile()].boxed()
}

fn label_key() -> BoxedStrategy<String> {
    prop_oneof![9 => "[A-Za-z0-9][A-Za-z0-9._/-]{0,16}", 1 => hostile()].boxed()
}

fn image() -> BoxedStrategy<String> {
    prop_oneof![
        12 => "([a-z0-9]{1,8}(\\.[a-z]{2,3})?(:[0-9]{2,5})?/)?[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,2}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,6})?",
        1 => hostile(),
    ]
    .boxed()
}

fn user() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[0-9]{1,5}",
        1 => Just("0".to_string()),
        1 => Just("root".to_string()),
        4 => "[a-z_][a-z0-9_.-]{0,6}(:[a-z0-9_]{1,4})?",
        1 => hostile(),
    ]
    .boxed()
}

fn image_path() -> BoxedStrategy<String> {
    prop_oneof![
        12 => "(/[A-Za-z0-9._-]{1,6}){1,3}/?",
        1 => Just("/".to_string()),
        1 => hostile(),
    ]
    .boxed()
}

fn env_list() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((env_name(), value()), 0..5)
        .prop_flat_map(|pairs| {
            // Reuse some names so "later wins" is exercised.
            let len = pairs.len();
            (Just(pairs), prop::collection::vec(0..len.max(1), 0..2))
        })
        .prop_map(|(mut pairs, repeats)| {
            for i in repeats {
                if let Some((name, _)) = pairs.get(i).cloned() {
                    pairs.push((name, "again $X \"q\"".into()));
                }
            }
            pairs
        })
}

fn dockerfile_spec() -> impl Strategy<Value = DockerfileSpec> {
    (
        image(),
        prop::collection::btree_map(label_key(), value(), 0..4),
        env_list(),
        user(),
        prop::option::of(user()),
        image_path(),
        any::<bool>(),
        image_path(),
        image_path(),
    )
        .prop_map(
            |(
                builder_image,
                labels,
                env,
                user,
                builder_user,
                destination,
                copy_scripts,
                assemble,
                run,
            )| {
                DockerfileSpec {
                    builder_image,
                    labels,
                    env,
                    user,
                    builder_user,
                    destination,
                    copy_scripts,
                    assemble,
                    run,
                }
            },
        )
}

/// What a refused spec's error message must mention: some part of the input at fault.
fn names_the_culprit(spec: &DockerfileSpec, message: &str) -> bool {
    let debug = |s: &str| format!("{s:?}");
    message.starts_with("builder image ")
        || message.starts_with("assemble user: invalid user")
        || message.starts_with("destination: invalid path")
        || message.starts_with("assemble script: invalid path")
        || message.starts_with("run script: invalid path")
        || spec.labels.keys().any(|k| {
            message.starts_with(&format!("label {}", debug(k)))
                || message.starts_with(&format!("label key {}", debug(k)))
        })
        || spec.env.iter().any(|(n, _)| {
            message.starts_with(&format!("environment variable {n}:"))
                || message.starts_with(&format!("environment variable name {}", debug(n)))
        })
}

/// Renders every case, parses the accepted ones in one batch and checks them. Returns
/// (cases, refused).
fn check_rendered_batch(specs: Vec<DockerfileSpec>) -> (usize, usize) {
    let mut accepted = Vec::new();
    let mut refused = 0;
    for spec in specs {
        match render_dockerfile(&spec) {
            Ok(text) => accepted.push((spec, text)),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    names_the_culprit(&spec, &message),
                    "the error {message:?} does not name the field at fault in {spec:#?}"
                );
                refused += 1;
            }
        }
    }
    let texts: Vec<String> = accepted.iter().map(|(_, t)| t.clone()).collect();
    let parsed = parse_batch(&texts);
    let mut failures = Vec::new();
    for ((spec, text), parsed) in accepted.iter().zip(&parsed) {
        if let Err(why) = check_dockerfile(spec, parsed) {
            failures.push(format!(
                "{why}\n--- input {spec:#?}\n--- Dockerfile\n{text}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Dockerfiles are not what was intended; first:\n{}",
        failures.len(),
        accepted.len(),
        failures[0]
    );
    (accepted.len() + refused, refused)
}

fn report(test: &str, total: usize, refused: usize, start: Instant) {
    println!(
        "{test}: {total} cases ({} rendered and checked by BuildKit's parser, {refused} refused) in {:.2?}",
        total - refused,
        start.elapsed()
    );
}

// --- properties ---------------------------------------------------------------------------

#[test]
fn rendered_dockerfiles_hold_exactly_the_intended_instructions() {
    let start = Instant::now();
    let specs = RefCell::new(Vec::new());
    runner()
        .run(&dockerfile_spec(), |spec| {
            specs.borrow_mut().push(spec);
            Ok(())
        })
        .unwrap();
    // A valid baseline in every batch, so the check itself is known to accept good output.
    let mut specs = specs.into_inner();
    specs.push(DockerfileSpec {
        builder_image: DEFAULT_BUILDER.into(),
        labels: BTreeMap::from([("a".into(), "$HOME \"x\" \\".into())]),
        env: vec![("A".into(), "${PATH}\\".into())],
        user: "1001".into(),
        builder_user: None,
        destination: "/tmp".into(),
        copy_scripts: true,
        assemble: "/usr/libexec/s2i/assemble".into(),
        run: "/usr/libexec/s2i/run".into(),
    });
    let (total, refused) = check_rendered_batch(specs);
    assert!(
        total > refused,
        "every case was refused: the strategies are useless"
    );
    report("dockerfile", total, refused, start);
}

fn sourcebuild_spec() -> impl Strategy<Value = SourceBuildSpec> {
    (
        prop::option::of(image()),
        image(),
        prop::collection::btree_map(label_key(), value(), 0..4),
        prop::collection::vec((env_name(), value()), 0..5),
        prop::option::of(user()),
        prop::option::of(prop_oneof![3 => "[a-z]{1,4}(/[a-z.]{1,4}){0,2}", 1 => hostile()]),
    )
        .prop_map(
            |(builder, output, labels, env, assemble_user, context_dir)| {
                let mut spec: SourceBuildSpec = serde_json::from_value(serde_json::json!({
                    "source": {"git": {"url": "https://example.com/acme/app.git"}},
                    "output": {"image": "registry.example.com/acme/app:1"},
                }))
                .unwrap();
                spec.builder.image = builder;
                spec.output.image = output;
                spec.output.labels = labels;
                spec.env = env
                    .into_iter()
                    .map(|(name, value)| EnvVar { name, value })
                    .collect();
                spec.builder.assemble_user = assemble_user;
                spec.source.context_dir = context_dir;
                spec
            },
        )
}

/// The Dockerfile spec `prepare` derives from a SourceBuild spec (default builder metadata).
fn derived(spec: &SourceBuildSpec) -> DockerfileSpec {
    let req = PrepareRequest {
        source: spec.source.clone(),
        builder_image: spec
            .builder
            .image
            .clone()
            .unwrap_or_else(|| DEFAULT_BUILDER.into()),
        scripts_url: None,
        assemble_user: spec.builder.assemble_user.clone(),
        env: spec.env.clone(),
        labels: spec.output.labels.clone(),
        output_image: spec.output.image.clone(),
        insecure_registries: Vec::new(),
    };
    let fetched = FetchedSource {
        root: PathBuf::from("/nonexistent"),
        revision: Some("3f786850e387550fdab836ed7e6dc881de23001b".into()),
        origin: None,
        location: "https://example.com/acme/app.git".into(),
    };
    DockerfileSpec {
        builder_image: req.builder_image.clone(),
        labels: build_labels(&fetched, &req),
        env: req
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect(),
        user: req.assemble_user.clone().unwrap_or_else(|| "1001".into()),
        builder_user: None,
        destination: "/tmp".into(),
        copy_scripts: false,
        assemble: "/usr/libexec/s2i/assemble".into(),
        run: "/usr/libexec/s2i/run".into(),
    }
}

/// The spec fields a FieldError may name for this spec.
fn field_exists(spec: &SourceBuildSpec, field: &str) -> bool {
    let indexed = |prefix: &str, len: usize| {
        (0..len).any(|i| {
            field == format!("{prefix}[{i}].name") || field == format!("{prefix}[{i}].value")
        })
    };
    matches!(
        field,
        "spec.builder.image"
            | "spec.output.image"
            | "spec.builder.assembleUser"
            | "spec.source.contextDir"
    ) || indexed("spec.env", spec.env.len())
        || spec
            .output
            .labels
            .keys()
            .any(|k| field == format!("spec.output.labels[{k:?}]"))
}

#[test]
fn sourcebuild_specs_are_refused_by_field_or_render_exactly() {
    let start = Instant::now();
    let specs = RefCell::new(Vec::new());
    let refused_by_validation = RefCell::new(0usize);
    runner()
        .run(&sourcebuild_spec(), |spec| {
            let dockerfile = derived(&spec);
            match sourcebuild::validation::validate_spec(&spec) {
                Ok(()) => {
                    // What admission and the controller accept must not fail in the build Pod.
                    if let Err(e) = render_dockerfile(&dockerfile) {
                        return Err(TestCaseError::fail(format!(
                            "validate_spec accepted a spec whose Dockerfile cannot be rendered: {e}"
                        )));
                    }
                    specs.borrow_mut().push(dockerfile);
                }
                Err(invalid) => {
                    for error in &invalid.0 {
                        prop_assert!(
                            field_exists(&spec, &error.field),
                            "error names {:?}, not a field of the spec",
                            error.field
                        );
                        prop_assert!(!error.message.is_empty());
                    }
                    *refused_by_validation.borrow_mut() += 1;
                    // The Dockerfile generator is the second line of defence: it either refuses
                    // too or renders something exact; the batch check below covers both.
                    specs.borrow_mut().push(dockerfile);
                }
            }
            Ok(())
        })
        .unwrap();
    let (total, refused) = check_rendered_batch(specs.into_inner());
    println!(
        "sourcebuild spec: validate_spec refused {} of {total}",
        refused_by_validation.into_inner()
    );
    report("sourcebuild spec", total, refused, start);
}

/// `.s2i/environment` content: good lines with hostile values, comments, blanks and junk,
/// joined by LF, CRLF or a lone CR.
fn environment_file() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => ("[A-Za-z_][A-Za-z0-9_]{0,6}", " {0,2}", value()).prop_map(|(n, s, v)| format!("{n}{s}={v}")),
        1 => "#[ -~]{0,10}",
        1 => Just(String::new()),
        1 => hostile(),
    ];
    prop::collection::vec(
        (line, prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]),
        0..6,
    )
    .prop_map(|lines| {
        lines
            .into_iter()
            .map(|(l, sep)| format!("{l}{sep}"))
            .collect()
    })
}

#[test]
fn environment_files_are_refused_by_line_or_render_exactly() {
    let start = Instant::now();
    let specs = RefCell::new(Vec::new());
    runner()
        .run(&environment_file(), |content| {
            match parse_environment(".s2i/environment", &content) {
                Ok(pairs) => {
                    let mut spec = derived(&serde_json::from_value(serde_json::json!({
                        "source": {"git": {"url": "https://example.com/a.git"}},
                        "output": {"image": "registry.example.com/a:1"},
                    }))
                    .unwrap());
                    spec.env = pairs;
                    spec.env.push(("FROM_SPEC".into(), "x".into()));
                    // Accepted by the parser means the build goes on: the value must render.
                    if let Err(e) = render_dockerfile(&spec) {
                        return Err(TestCaseError::fail(format!(
                            "parse_environment accepted {content:?} but the Dockerfile refuses it: {e}"
                        )));
                    }
                    specs.borrow_mut().push(spec);
                }
                Err(e) => {
                    let message = e.to_string();
                    let line: usize = message
                        .strip_prefix(".s2i/environment:")
                        .and_then(|rest| rest.split(':').next())
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| TestCaseError::fail(format!("no file:line in {message:?}")))?;
                    // The line named is the first bad one: it fails alone, the ones before pass.
                    // The parsers' own line splitting: `\n`, one trailing `\r` dropped.
                    let lines: Vec<&str> = content.lines().collect();
                    prop_assert!(line >= 1 && line <= lines.len(), "{message}");
                    prop_assert!(parse_environment("f", lines[line - 1]).is_err(), "{message}: {content:?}");
                    prop_assert!(parse_environment("f", &lines[..line - 1].join("\n")).is_ok(), "{message}: {content:?}");
                }
            }
            Ok(())
        })
        .unwrap();
    let specs = specs.into_inner();
    let (total, refused) = check_rendered_batch(specs);
    assert_eq!(refused, 0);
    println!(
        "environment file: {} files parsed and rendered, in {:.2?}",
        total,
        start.elapsed()
    );
}

#[test]
fn ignore_files_never_panic_and_name_the_bad_line() {
    let start = Instant::now();
    let refused = RefCell::new(0usize);
    let line = prop_oneof![
        3 => "!?[a-z*?/.]{1,8}",
        2 => "[a-z\\[\\]^\\\\*?!-]{0,8}",
        1 => hostile(),
    ];
    let file = prop::collection::vec(line, 0..6).prop_map(|lines| lines.join("\n"));
    runner()
        .run(&(file, "[a-z./\\[\\]*\\\\]{0,10}"), |(content, path)| {
            match IgnoreRules::parse(".s2iignore", &content) {
                Ok(rules) => {
                    // Matching never panics, whatever the path.
                    let _ = rules.is_ignored(&path);
                }
                Err(e) => {
                    *refused.borrow_mut() += 1;
                    let message = e.to_string();
                    let line: usize = message
                        .strip_prefix(".s2iignore:")
                        .and_then(|rest| rest.split(':').next())
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| {
                            TestCaseError::fail(format!("no file:line in {message:?}"))
                        })?;
                    // The parsers' own line splitting: `\n`, one trailing `\r` dropped.
                    let lines: Vec<&str> = content.lines().collect();
                    prop_assert!(IgnoreRules::parse("f", lines[line - 1]).is_err());
                    prop_assert!(IgnoreRules::parse("f", &lines[..line - 1].join("\n")).is_ok());
                }
            }
            // A pattern made of the path with every special character escaped matches exactly it.
            let escaped: String = path
                .chars()
                .flat_map(|c| {
                    if "*?[\\".contains(c) {
                        vec!['\\', c]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            if !path.is_empty() && !path.starts_with(['#', '!', ' ']) && !path.ends_with(' ') {
                let rules = IgnoreRules::parse("f", &escaped).unwrap();
                prop_assert!(
                    rules.is_ignored(&path),
                    "{escaped:?} does not match {path:?}"
                );
            }
            Ok(())
        })
        .unwrap();
    println!(
        ".s2iignore: {} files, {} refused, in {:.2?}",
        cases(),
        refused.into_inner(),
        start.elapsed()
    );
}

// --- archives -----------------------------------------------------------------------------

/// One raw tar entry: name, type, link target, data, mode.
type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8], u32);

/// A tar with raw headers, so names the tar crate's builder would refuse can be written.
fn tar_of(entries: &[RawEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link, data, mode) in entries {
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Unpacks into `<tmp>/tree/src` and checks nothing appeared beside or above the destination.
fn unpack_checked(
    bytes: &[u8],
    limits: &ArchiveLimits,
) -> (
    tempfile::TempDir,
    Result<sourcebuild::source::archive::Stats, ArchiveError>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("tree/src");
    std::fs::create_dir_all(&dest).unwrap();
    let result = unpack_archive(bytes, &dest, limits, "https://example.com/a.tar");
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(tmp.path()),
        ["tree"],
        "something was written above the tree"
    );
    assert_eq!(
        names(&tmp.path().join("tree")),
        ["src"],
        "something was written beside src"
    );
    (tmp, result)
}

const FILE: tar::EntryType = tar::EntryType::Regular;
const SYMLINK: tar::EntryType = tar::EntryType::Symlink;
const HARDLINK: tar::EntryType = tar::EntryType::Link;

#[test]
fn hostile_archive_entries_are_refused_naming_the_entry_plain_and_gzip() {
    type Entries<'a> = Vec<RawEntry<'a>>;
    let cases: Vec<(Entries, &str, &str)> = vec![
        (
            vec![(b"../evil", FILE, b"", b"x", 0o644)],
            "UnsafePath",
            "\"../evil\"",
        ),
        (
            vec![(b"a/../../evil", FILE, b"", b"x", 0o644)],
            "UnsafePath",
            "\"a/../../evil\"",
        ),
        (
            vec![(b"/tmp/evil", FILE, b"", b"x", 0o644)],
            "UnsafePath",
            "\"/tmp/evil\"",
        ),
        (
            vec![(b"up", SYMLINK, b"../../evil", b"", 0o777)],
            "LinkOutside",
            "\"up\"",
        ),
        (
            vec![(b"abs", SYMLINK, b"/etc/passwd", b"", 0o777)],
            "LinkOutside",
            "\"abs\"",
        ),
        (
            // Inside by its text, outside once `d` is followed.
            vec![
                (b"d", SYMLINK, b"x/..", b"", 0o777),
                (b"x", SYMLINK, b"..", b"", 0o777),
            ],
            "LinkOutside",
            "\"x\"",
        ),
        (
            vec![(b"hl", HARDLINK, b"../evil", b"", 0o644)],
            "LinkOutside",
            "\"hl\"",
        ),
        (
            vec![(b"hl", HARDLINK, b"/etc/passwd", b"", 0o644)],
            "LinkOutside",
            "\"hl\"",
        ),
        (
            vec![(b"hl", HARDLINK, b"missing", b"", 0o644)],
            "BadHardLink",
            "\"hl\"",
        ),
        (
            // A file written through a symlink entry, even one pointing inside.
            vec![
                (b"sub/", tar::EntryType::Directory, b"", b"", 0o755),
                (b"l", SYMLINK, b"sub", b"", 0o777),
                (b"l/x", FILE, b"", b"through", 0o644),
            ],
            "ThroughSymlink",
            "\"l/x\"",
        ),
        (
            vec![(b"bad\xffname", FILE, b"", b"x", 0o644)],
            "NonUtf8Name",
            "bad\u{fffd}name",
        ),
        (
            vec![(b"link", SYMLINK, b"bad\xfftarget", b"", 0o777)],
            "NonUtf8Name",
            "bad\u{fffd}target",
        ),
    ];
    for (entries, variant, named) in &cases {
        for compress in [false, true] {
            let tar = tar_of(entries);
            let bytes = if compress { gzip(&tar) } else { tar };
            let (_tmp, result) = unpack_checked(&bytes, &ArchiveLimits::default());
            let err = result.expect_err(named);
            assert!(format!("{err:?}").starts_with(variant), "{named}: {err:?}");
            assert!(
                err.to_string().contains(named),
                "{err} does not name {named}"
            );
        }
    }
}

#[test]
fn special_entries_are_handled_safely() {
    let tar = tar_of(&[
        (b"dev/null", tar::EntryType::Char, b"", b"", 0o666),
        (b"dev/sda", tar::EntryType::Block, b"", b"", 0o660),
        (b"fifo", tar::EntryType::Fifo, b"", b"", 0o644),
        (b"suid", FILE, b"", b"#!/bin/sh\n", 0o6755),
        (b"a", FILE, b"", b"original", 0o644),
        (b"b", HARDLINK, b"a", b"", 0o644),
        // A later file at the hard link's path replaces the link, never writes through it.
        (b"b", FILE, b"", b"replaced", 0o644),
        (b"s", SYMLINK, b"a", b"", 0o777),
        // Same for a symlink.
        (b"s", FILE, b"", b"replaced too", 0o644),
    ]);
    let (tmp, result) = unpack_checked(&tar, &ArchiveLimits::default());
    let stats = result.unwrap();
    assert_eq!(stats.entries, 9);
    let dest = tmp.path().join("tree/src");
    for gone in ["dev/null", "dev/sda", "fifo"] {
        assert!(
            std::fs::symlink_metadata(dest.join(gone)).is_err(),
            "{gone}"
        );
    }
    let mode = std::fs::metadata(dest.join("suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "setuid/setgid dropped");
    assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "original");
    assert_eq!(std::fs::read_to_string(dest.join("b")).unwrap(), "replaced");
    assert!(std::fs::symlink_metadata(dest.join("s")).unwrap().is_file());
}

#[test]
fn archive_bombs_stop_at_the_configured_limits_with_a_clear_error() {
    let zeros = vec![0u8; 8 << 20];
    let bomb = gzip(&tar_of(&[(b"zeros.bin", FILE, b"", &zeros, 0o644)]));
    assert!(bomb.len() < 64 << 10);
    let limits = ArchiveLimits {
        max_unpacked_bytes: 1 << 20,
        ..ArchiveLimits::default()
    };
    let (tmp, result) = unpack_checked(&bomb, &limits);
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "archive unpacks to more than 1048576 bytes (reached at entry \"zeros.bin\")"
    );
    assert!(!tmp.path().join("tree/src/zeros.bin").exists());

    let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let entries: Vec<_> = names
        .iter()
        .map(|n| (n.as_bytes(), FILE, &b""[..], &b""[..], 0o644))
        .collect();
    let limits = ArchiveLimits {
        max_entries: 10,
        ..ArchiveLimits::default()
    };
    let (tmp, result) = unpack_checked(&gzip(&tar_of(&entries)), &limits);
    assert_eq!(
        result.unwrap_err().to_string(),
        "archive has more than 10 entries"
    );
    // The ten entries unpacked before the limit are removed again: nothing half-done.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("tree/src"))
            .unwrap()
            .count(),
        0
    );

    // A header that claims more bytes than the archive holds.
    let mut lying = tar_of(&[(b"short", FILE, b"", &[7u8; 1024], 0o644)]);
    lying.truncate(512 + 100);
    let (_tmp, result) = unpack_checked(&lying, &ArchiveLimits::default());
    assert!(
        matches!(result, Err(ArchiveError::Corrupt { .. })),
        "{result:?}"
    );
}

// --- source trees -------------------------------------------------------------------------

fn write(root: &Path, relative: &str, content: &[u8], mode: u32) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn request() -> PrepareRequest {
    PrepareRequest {
        source: Source {
            git: Some(GitSource {
                url: "https://example.com/acme/app.git".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        builder_image: DEFAULT_BUILDER.into(),
        scripts_url: None,
        assemble_user: None,
        env: vec![EnvVar {
            name: "FROM_SPEC".into(),
            value: "$HOME \"x\"".into(),
        }],
        labels: BTreeMap::new(),
        output_image: "registry.example.com/acme/app:1".into(),
        insecure_registries: Vec::new(),
    }
}

/// Runs `prepare_workspace` on the tree in `root`; the workspace lives next to it.
fn prepare(root: &Path) -> (tempfile::TempDir, Result<String, PrepareError>) {
    let workspace = tempfile::tempdir().unwrap();
    let fetched = FetchedSource {
        root: root.to_path_buf(),
        revision: None,
        origin: None,
        location: "https://example.com/acme/app.git".into(),
    };
    let result = prepare_workspace(
        &fetched,
        &request(),
        &sourcebuild::builder_image::BuilderImage::unresolved(&request().builder_image),
        workspace.path(),
    )
    .map(|_| std::fs::read_to_string(workspace.path().join("Dockerfile")).unwrap());
    (workspace, result)
}

#[test]
fn hooks_without_the_exec_bit_are_made_executable() {
    let src = tempfile::tempdir().unwrap();
    write(
        src.path(),
        ".s2i/bin/assemble",
        b"#!/bin/sh\necho assemble\n",
        0o644,
    );
    write(src.path(), ".s2i/bin/run", b"#!/bin/sh\nexec app\n", 0o600);
    write(src.path(), "app.py", b"print()\n", 0o644);
    let (workspace, result) = prepare(src.path());
    let dockerfile = result.unwrap();
    for hook in ["assemble", "run"] {
        let path = workspace.path().join("upload/scripts").join(hook);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o755
        );
    }
    assert!(
        dockerfile.contains("RUN [\"/tmp/scripts/assemble\"]\n"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("CMD [\"/tmp/scripts/run\"]\n"),
        "{dockerfile}"
    );
}

#[test]
fn a_hook_with_a_crlf_shebang_is_refused_naming_the_hook() {
    for hook in ["assemble", "run"] {
        let src = tempfile::tempdir().unwrap();
        write(
            src.path(),
            &format!(".s2i/bin/{hook}"),
            b"#!/bin/sh\r\necho hi\r\n",
            0o755,
        );
        let (_workspace, result) = prepare(src.path());
        let err = result.unwrap_err();
        assert!(
            matches!(&err, PrepareError::Context(ContextError::HookCrlf { path }) if *path == format!(".s2i/bin/{hook}")),
            "{err:?}"
        );
        assert_eq!(err.reason(), "InvalidSource");
        assert_eq!(
            err.to_string(),
            format!(
                ".s2i/bin/{hook}: the #! line ends with a carriage return (CRLF line endings); convert the script to LF line endings"
            )
        );
    }
    // A binary hook or LF script is fine; so is a CR later in the file.
    let src = tempfile::tempdir().unwrap();
    write(src.path(), ".s2i/bin/assemble", b"\x7fELF\r\n", 0o755);
    write(
        src.path(),
        ".s2i/bin/run",
        b"#!/bin/sh\nprintf 'a\\r\\n'\r\n",
        0o755,
    );
    prepare(src.path()).1.unwrap();
}

#[test]
fn environment_and_ignore_files_with_crlf_work_and_a_lone_cr_names_the_line() {
    let src = tempfile::tempdir().unwrap();
    write(
        src.path(),
        ".s2i/environment",
        b"# comment\r\nAPP_FILE=app.py\r\nQUOTED=\"a b\" $HOME \\x\r\n",
        0o644,
    );
    write(src.path(), ".s2iignore", b"*.log\r\nsecret\r\n", 0o644);
    write(src.path(), "app.log", b"x", 0o644);
    write(src.path(), "secret", b"x", 0o644);
    write(src.path(), "app.py", b"x", 0o644);
    let (workspace, result) = prepare(src.path());
    let dockerfile = result.unwrap();
    let upload = workspace.path().join("upload/src");
    assert!(upload.join("app.py").exists());
    assert!(!upload.join("app.log").exists() && !upload.join("secret").exists());
    // Through BuildKit's parser: the values arrive byte for byte, no `\r`, nothing expanded.
    let parsed = parse_batch(std::slice::from_ref(&dockerfile));
    let Parsed::Ok(instructions) = &parsed[0] else {
        panic!("{parsed:?}")
    };
    let env = instructions
        .iter()
        .find(|i| i.cmd.eq_ignore_ascii_case("ENV"))
        .unwrap();
    assert_eq!(
        eval_pairs(env).unwrap(),
        [
            ("APP_FILE".to_string(), "app.py".to_string()),
            ("QUOTED".into(), "\"a b\" $HOME \\x".into()),
            ("FROM_SPEC".into(), "$HOME \"x\"".into()),
        ]
    );

    let src = tempfile::tempdir().unwrap();
    write(src.path(), ".s2i/environment", b"A=1\rB=2\n", 0o644);
    let err = prepare(src.path()).1.unwrap_err();
    assert_eq!(err.reason(), "InvalidSource");
    assert!(
        err.to_string()
            .starts_with(".s2i/environment:1: the value of A contains a carriage return"),
        "{err}"
    );

    let src = tempfile::tempdir().unwrap();
    write(src.path(), ".s2i/environment", b"A=\xff\n", 0o644);
    let err = prepare(src.path()).1.unwrap_err();
    assert_eq!(err.to_string(), ".s2i/environment: is not valid UTF-8");
}

#[test]
fn non_utf8_file_names_in_a_source_tree_are_copied_as_they_are() {
    use std::os::unix::ffi::OsStrExt;
    let src = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(src.path().join(name), b"x").unwrap();
    let (workspace, result) = prepare(src.path());
    result.unwrap();
    assert_eq!(
        std::fs::read(workspace.path().join("upload/src").join(name)).unwrap(),
        b"x"
    );
}

/// No file under `dir` holds the outside secret and no symlink in it resolves outside `root`.
fn nothing_from_outside(root: &Path, dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().all(|entry| {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_symlink() {
            std::fs::canonicalize(&path).map_or(true, |real| real.starts_with(root))
        } else if meta.is_dir() {
            nothing_from_outside(root, &path)
        } else {
            std::fs::read(&path).unwrap() != b"secret"
        }
    })
}

#[test]
fn context_dirs_are_refused_by_name_or_stay_inside_the_source() {
    let start = Instant::now();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", b"secret", 0o644);
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "app/main.py", b"x", 0o644);
    write(src.path(), "app/sub/x.py", b"x", 0o644);
    symlink(outside.path(), src.path().join("out")).unwrap();
    symlink("..", src.path().join("app/up")).unwrap();
    symlink("app", src.path().join("alias")).unwrap();
    let dir = prop_oneof![
        3 => "(app|sub|out|up|alias|\\.|\\.\\.|x|/|//)(/(app|sub|out|up|alias|\\.|\\.\\.|x)){0,3}/?",
        1 => hostile(),
    ];
    let count = RefCell::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases().min(100),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&dir, |dir| {
            *count.borrow_mut() += 1;
            let workspace = tempfile::tempdir().unwrap();
            match lay_out_context(src.path(), Some(&dir), workspace.path()) {
                Ok(_) => {
                    let copied = workspace.path().join("upload/src");
                    prop_assert!(
                        nothing_from_outside(&copied, &copied),
                        "{dir:?} reached outside"
                    );
                }
                Err(e) => prop_assert!(
                    e.to_string().starts_with(&format!("contextDir {dir:?}")),
                    "{dir:?}: {e}"
                ),
            }
            Ok(())
        })
        .unwrap();
    println!(
        "contextDir: {} cases in {:.2?}",
        count.into_inner(),
        start.elapsed()
    );
}

/// A link that only escapes through another link (`a -> .`, `b -> a/..`): the archive is
/// refused, and no link leading out of the destination is left behind, even on error.
#[test]
fn a_link_chain_escaping_through_a_dot_link_is_refused_and_removed() {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, target) in [("a", "."), ("b", "a/..")] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        builder.append_link(&mut header, name, target).unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let result = sourcebuild::source::archive::unpack_archive(
        &bytes[..],
        &dest,
        &sourcebuild::source::ArchiveLimits::default(),
        "test.tar",
    );
    assert!(result.is_err(), "an escaping link chain was accepted");
    let dest = dest.canonicalize().unwrap();
    for entry in std::fs::read_dir(&dest).unwrap() {
        let path = entry.unwrap().path();
        if let Ok(resolved) = path.canonicalize() {
            assert!(
                resolved.starts_with(&dest),
                "{} resolves to {}",
                path.display(),
                resolved.display()
            );
        }
    }
}
