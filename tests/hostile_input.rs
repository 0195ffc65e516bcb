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
use sourcebuild::prepare::{PrepareError, PrepareRequest, build_labels, prepare_workspace};
use sourcebuild::s2i::context::{ContextError, lay_out_context};
use sourcebuild::s2i::dockerfile::{DockerfileSpec, render_dockerfile};
use sourcebuild::s2i::environment::parse_environment;
use sourcebuild::s2i::ignore::IgnoreRules;
use sourcebuild::s2i::scripts::BuilderMetadata;
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
    if instruction.value.len() % 2 != 0 {
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
        if p == "/" { p.to_string() } else { p.trim_end_matches('/').to_string() }
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
        .is_some_and(|b| b != spec.user && !(is_root(b) && is_root(&spec.user)));
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
    prop::collection::vec(
        (env_name(), value()),
        0..5,
    )
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
            |(builder_image, labels, env, user, builder_user, destination, copy_scripts, assemble, run)| {
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
        || spec
            .labels
            .keys()
            .any(|k| message.starts_with(&format!("label {}", debug(k))) || message.starts_with(&format!("label key {}", debug(k))))
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
            failures.push(format!("{why}\n--- input {spec:#?}\n--- Dockerfile\n{text}"));
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
    assert!(total > refused, "every case was refused: the strategies are useless");
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
        .prop_map(|(builder, output, labels, env, assemble_user, context_dir)| {
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
        })
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
    .prop_map(|lines| lines.into_iter().map(|(l, sep)| format!("{l}{sep}")).collect())
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
    println!("environment file: {} files parsed and rendered, in {:.2?}", total, start.elapsed());
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
                        .ok_or_else(|| TestCaseError::fail(format!("no file:line in {message:?}")))?;
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
                    if "*?[\\".contains(c) { vec!['\\', c] } else { vec![c] }
                })
                .collect();
            if !path.is_empty() && !path.starts_with(['#', '!', ' ']) && !path.ends_with(' ') {
                let rules = IgnoreRules::parse("f", &escaped).unwrap();
                prop_assert!(rules.is_ignored(&path), "{escaped:?} does not match {path:?}");
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
