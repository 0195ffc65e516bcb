//! Checks of a SourceBuild spec that name the field at fault.
//!
//! The CRD schema already refuses most bad values at admission; these checks repeat them for
//! `sourcebuild render` (no API server offline) and add what the schema cannot express, so the
//! controller fails a build with `InvalidSpec` instead of creating a Pod that cannot work.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::api::{
    ENV_NAME_PATTERN, IMAGE_REFERENCE_PATTERN, LABEL_KEY_PATTERN, MIN_POLL_INTERVAL,
    OBJECT_NAME_PATTERN, POLL_WITH_COMMIT_MESSAGE, POLL_WITH_SECRET_MESSAGE, SourceBuildSpec,
    USER_PATTERN,
};

static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(ENV_NAME_PATTERN).unwrap());
static IMAGE_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(IMAGE_REFERENCE_PATTERN).unwrap());
static LABEL_KEY: LazyLock<Regex> = LazyLock::new(|| Regex::new(LABEL_KEY_PATTERN).unwrap());
static OBJECT_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(OBJECT_NAME_PATTERN).unwrap());
static USER: LazyLock<Regex> = LazyLock::new(|| Regex::new(USER_PATTERN).unwrap());
static SHA256_HEX: LazyLock<Regex> = LazyLock::new(|| Regex::new("^[0-9a-f]{64}$").unwrap());
static SCRIPTS_URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(image://(/?[A-Za-z0-9._/-]+)|https?://[^\s]+)$").unwrap());

/// One problem with one field, in `kubectl explain` path syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// For example `spec.env[2].name`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpec(pub Vec<FieldError>);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }
}

/// Validates a spec; `Err` lists every field at fault.
pub fn validate_spec(spec: &SourceBuildSpec) -> Result<(), InvalidSpec> {
    let mut errors = Errors::default();
    validate_source(spec, &mut errors);
    validate_builder(spec, &mut errors);
    validate_output(spec, &mut errors);
    validate_env(spec, &mut errors);
    if let Some(timeout) = spec.timeout {
        errors.check(
            !timeout.is_negative()
                && std::time::Duration::from(timeout) > std::time::Duration::ZERO,
            "spec.timeout",
            format!("must be a positive duration, got {timeout}"),
        );
        errors.check(
            std::time::Duration::from(timeout) <= std::time::Duration::from_secs(168 * 3600),
            "spec.timeout",
            format!("must be at most 168h, got {timeout}"),
        );
    }
    if let Some(cache) = &spec.cache
        && let Some(repo) = &cache.repo
    {
        check_image(&mut errors, "spec.cache.repo", repo);
    }
    if let Some(sa) = &spec.service_account_name {
        check_object_name(&mut errors, "spec.serviceAccountName", sa);
    }
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec(errors.0))
    }
}

fn validate_source(spec: &SourceBuildSpec, errors: &mut Errors) {
    let source = &spec.source;
    let kinds = [
        source.git.is_some(),
        source.config_map.is_some(),
        source.archive.is_some(),
        source.oci.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        1 => {}
        0 => errors.add(
            "spec.source",
            "exactly one of git, configMap, archive or oci must be set, got none",
        ),
        _ => errors.add(
            "spec.source",
            "exactly one of git, configMap, archive or oci must be set, got several",
        ),
    }
    if let Some(git) = &source.git {
        check_url(
            errors,
            "spec.source.git.url",
            &git.url,
            &["https", "http", "git"],
        );
        if let Some(revision) = &git.revision {
            errors.check(
                !revision.is_empty()
                    && !revision.starts_with('-')
                    && !revision.contains("..")
                    && !revision
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c)),
                "spec.source.git.revision",
                format!("{revision:?} is not a valid branch, tag or commit name"),
            );
        }
        if let Some(secret) = &git.secret_ref {
            check_object_name(errors, "spec.source.git.secretRef.name", &secret.name);
        }
        if let Some(interval) = git.poll_interval {
            let field = "spec.source.git.pollInterval";
            errors.check(
                !interval.is_negative() && std::time::Duration::from(interval) >= MIN_POLL_INTERVAL,
                field,
                format!("must be at least 1m, got {interval}"),
            );
            errors.check(git.secret_ref.is_none(), field, POLL_WITH_SECRET_MESSAGE);
            errors.check(
                !git.revision.as_deref().is_some_and(is_commit_id),
                field,
                POLL_WITH_COMMIT_MESSAGE,
            );
        }
    }
    if let Some(config_map) = &source.config_map {
        check_object_name(errors, "spec.source.configMap.name", &config_map.name);
        let mut paths = BTreeSet::new();
        for (i, item) in config_map.items.iter().enumerate() {
            errors.check(
                !item.key.is_empty()
                    && item
                        .key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
                format!("spec.source.configMap.items[{i}].key"),
                format!("{:?} is not a valid ConfigMap key", item.key),
            );
            let field = format!("spec.source.configMap.items[{i}].path");
            check_relative_path(errors, &field, &item.path);
            errors.check(
                paths.insert(item.path.as_str()),
                field,
                format!("{:?} is used by more than one item", item.path),
            );
        }
    }
    if let Some(archive) = &source.archive {
        check_url(
            errors,
            "spec.source.archive.url",
            &archive.url,
            &["https", "http"],
        );
        if let Some(sha) = &archive.sha256 {
            errors.check(
                SHA256_HEX.is_match(sha),
                "spec.source.archive.sha256",
                "must be 64 lowercase hexadecimal digits",
            );
        }
    }
    if let Some(oci) = &source.oci {
        check_image(errors, "spec.source.oci.image", &oci.image);
        if let Some(secret) = &oci.secret_ref {
            check_object_name(errors, "spec.source.oci.secretRef.name", &secret.name);
        }
    }
    if let Some(dir) = &source.context_dir {
        check_relative_path(errors, "spec.source.contextDir", dir);
    }
}

/// A full SHA-1 or SHA-256 object name, as the CRD's rule spells it.
fn is_commit_id(revision: &str) -> bool {
    matches!(revision.len(), 40 | 64) && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

fn validate_builder(spec: &SourceBuildSpec, errors: &mut Errors) {
    let builder = &spec.builder;
    if let Some(image) = &builder.image {
        check_image(errors, "spec.builder.image", image);
    }
    if let Some(url) = &builder.scripts_url {
        errors.check(
            SCRIPTS_URL.is_match(url) && !url.split('/').any(|s| s == ".."),
            "spec.builder.scriptsUrl",
            format!("{url:?} must be image:///path or an http(s):// URL"),
        );
    }
    if let Some(user) = &builder.assemble_user {
        errors.check(
            USER.is_match(user),
            "spec.builder.assembleUser",
            format!("{user:?} must be a user name or uid, optionally with :group"),
        );
    }
}

fn validate_output(spec: &SourceBuildSpec, errors: &mut Errors) {
    let output = &spec.output;
    if check_image(errors, "spec.output.image", &output.image) {
        errors.check(
            !output.image.contains('@'),
            "spec.output.image",
            "must name a tag, not a digest: a digest cannot be pushed to",
        );
    }
    if let Some(secret) = &output.push_secret_ref {
        check_object_name(errors, "spec.output.pushSecretRef.name", &secret.name);
    }
    for (key, value) in &output.labels {
        let field = format!("spec.output.labels[{key:?}]");
        errors.check(
            key.len() <= 255 && LABEL_KEY.is_match(key),
            field.clone(),
            "label keys must match [A-Za-z0-9][A-Za-z0-9._/-]* and be at most 255 characters",
        );
        check_single_line(errors, &field, value);
    }
}

fn validate_env(spec: &SourceBuildSpec, errors: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, var) in spec.env.iter().enumerate() {
        let field = format!("spec.env[{i}].name");
        errors.check(
            ENV_NAME.is_match(&var.name),
            field.clone(),
            format!(
                "{:?} is not a valid name: use [A-Za-z_][A-Za-z0-9_]*",
                var.name
            ),
        );
        errors.check(
            seen.insert(var.name.as_str()),
            field,
            format!("{:?} is set more than once", var.name),
        );
        check_single_line(errors, &format!("spec.env[{i}].value"), &var.value);
    }
}

/// A Dockerfile word cannot carry a line break or NUL byte under any quoting, so such a value
/// is refused here rather than half-encoded later.
fn check_single_line(errors: &mut Errors, field: &str, value: &str) {
    errors.check(
        !value.contains(['\n', '\r', '\0']),
        field,
        "must not contain a line break or NUL character",
    );
}

fn check_image(errors: &mut Errors, field: &str, image: &str) -> bool {
    let ok = image.len() <= 512 && IMAGE_REFERENCE.is_match(image);
    errors.check(
        ok,
        field,
        format!("{image:?} is not a valid image reference (expected e.g. registry.example.com/team/app:1.0)"),
    );
    ok
}

/// Whether `name` is a valid object name (a lowercase RFC 1123 subdomain of at most 253
/// characters), as SourceBuilds and Secrets need.
pub fn is_object_name(name: &str) -> bool {
    name.len() <= 253 && OBJECT_NAME.is_match(name)
}

fn check_object_name(errors: &mut Errors, field: &str, name: &str) {
    errors.check(
        is_object_name(name),
        field,
        format!("{name:?} is not a valid object name (lowercase RFC 1123 subdomain)"),
    );
}

fn check_url(errors: &mut Errors, field: &str, url: &str, schemes: &[&str]) {
    let scheme_ok = url
        .split_once("://")
        .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
    errors.check(
        scheme_ok && !url.chars().any(|c| c.is_whitespace() || c.is_control()),
        field,
        format!("{url:?} must be a URL with scheme {}", schemes.join(", ")),
    );
}

fn check_relative_path(errors: &mut Errors, field: &str, path: &str) {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "..");
    errors.check(
        ok,
        field,
        format!("{path:?} must be a relative path without '..' or empty segments"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ArchiveSource, Cache, ConfigMapSource, EnvVar, GitSource, KeyToPath, OciSource, Output,
        SecretReference, Source, SourceBuild,
    };

    fn valid() -> SourceBuildSpec {
        SourceBuildSpec {
            source: Source {
                git: Some(GitSource {
                    url: "https://example.com/acme/app.git".into(),
                    revision: Some("main".into()),
                    secret_ref: None,
                    poll_interval: None,
                }),
                ..Default::default()
            },
            builder: Default::default(),
            output: Output {
                image: "registry.example.com/team/app:1.0".into(),
                ..Default::default()
            },
            env: vec![EnvVar {
                name: "APP_FILE".into(),
                value: "service.py".into(),
            }],
            timeout: None,
            cache: None,
            resources: None,
            service_account_name: None,
            ..SourceBuildSpec::default()
        }
    }

    fn fields(spec: &SourceBuildSpec) -> Vec<String> {
        match validate_spec(spec) {
            Ok(()) => vec![],
            Err(InvalidSpec(errors)) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    /// The same spec through the CRD's own CEL rules, evaluated client-side.
    fn cel_rejects(spec: &SourceBuildSpec) -> bool {
        let sb = SourceBuild::new("app", spec.clone());
        kube::core::cel::validate_cel(&sb).is_err()
    }

    #[test]
    fn a_valid_spec_passes_both_layers() {
        assert_eq!(fields(&valid()), Vec::<String>::new());
        assert!(!cel_rejects(&valid()));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        type Mutation = fn(&mut SourceBuildSpec);
        let cases: Vec<(&str, Mutation)> = vec![
            ("spec.source", |s| s.source.git = None),
            ("spec.source", |s| {
                s.source.archive = Some(Box::new(ArchiveSource {
                    url: "https://example.com/a.tgz".into(),
                    sha256: None,
                }))
            }),
            ("spec.source", |s| {
                s.source.oci = Some(Box::new(OciSource {
                    image: "registry.example.com/a/source:1".into(),
                    secret_ref: None,
                }))
            }),
            ("spec.source.oci.image", |s| {
                s.source.git = None;
                s.source.oci = Some(Box::new(OciSource {
                    image: "oci://registry.example.com/a".into(),
                    secret_ref: None,
                }))
            }),
            ("spec.source.oci.secretRef.name", |s| {
                s.source.git = None;
                s.source.oci = Some(Box::new(OciSource {
                    image: "registry.example.com/a/source@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                    secret_ref: Some(SecretReference { name: "Bad_Name".into() }),
                }))
            }),
            ("spec.source.git.url", |s| {
                s.source.git.as_mut().unwrap().url = "file:///etc".into()
            }),
            ("spec.source.git.revision", |s| {
                s.source.git.as_mut().unwrap().revision = Some("--upload-pack=x".into())
            }),
            ("spec.source.contextDir", |s| {
                s.source.context_dir = Some("../etc".into())
            }),
            ("spec.source.contextDir", |s| {
                s.source.context_dir = Some("/abs".into())
            }),
            ("spec.source.contextDir", |s| {
                s.source.context_dir = Some("a/../../b".into())
            }),
            ("spec.builder.image", |s| {
                s.builder.image = Some("Not A Reference".into())
            }),
            ("spec.builder.scriptsUrl", |s| {
                s.builder.scripts_url = Some("ftp://x/y".into())
            }),
            ("spec.builder.assembleUser", |s| {
                s.builder.assemble_user = Some("1001; rm -rf /".into())
            }),
            ("spec.output.image", |s| {
                s.output.image = "registry.example.com/Team/app".into()
            }),
            ("spec.output.image", |s| {
                s.output.image = format!("registry.example.com/app@sha256:{}", "a".repeat(64))
            }),
            ("spec.env[0].name", |s| s.env[0].name = "1BAD".into()),
            ("spec.env[0].name", |s| s.env[0].name = "A B".into()),
            ("spec.env[0].value", |s| {
                s.env[0].value = "x\nRUN curl evil | sh".into()
            }),
            ("spec.env[1].name", |s| s.env.push(s.env[0].clone())),
            ("spec.timeout", |s| s.timeout = Some("-5m".parse().unwrap())),
            ("spec.timeout", |s| s.timeout = Some("0s".parse().unwrap())),
            ("spec.cache.repo", |s| {
                s.cache = Some(Box::new(Cache {
                    enabled: true,
                    repo: Some("registry.example.com/UPPER".into()),
                }))
            }),
            ("spec.serviceAccountName", |s| {
                s.service_account_name = Some("Builder_SA".into())
            }),
            ("spec.source.git.pollInterval", |s| {
                s.source.git.as_mut().unwrap().poll_interval = Some("30s".parse().unwrap())
            }),
            ("spec.source.git.pollInterval", |s| {
                let git = s.source.git.as_mut().unwrap();
                git.poll_interval = Some("5m".parse().unwrap());
                git.secret_ref = Some(crate::api::SecretReference {
                    name: "git-creds".into(),
                });
            }),
            ("spec.source.git.pollInterval", |s| {
                let git = s.source.git.as_mut().unwrap();
                git.poll_interval = Some("5m".parse().unwrap());
                git.revision = Some("0123456789abcdef0123456789abcdef01234567".into());
            }),
        ];
        for (field, mutate) in cases {
            let mut spec = valid();
            mutate(&mut spec);
            let got = fields(&spec);
            assert!(
                got.iter().any(|f| f == field),
                "expected an error on {field}, got {got:?}"
            );
        }
    }

    #[test]
    fn label_and_configmap_rules() {
        let mut spec = valid();
        spec.output.labels.insert("bad key".into(), "v".into());
        spec.output
            .labels
            .insert("ok.key/x".into(), "line\nbreak".into());
        spec.source.git = None;
        spec.source.config_map = Some(Box::new(ConfigMapSource {
            name: "app-src".into(),
            items: vec![
                KeyToPath {
                    key: "assemble".into(),
                    path: ".s2i/bin/assemble".into(),
                },
                KeyToPath {
                    key: "assemble2".into(),
                    path: ".s2i/bin/assemble".into(),
                },
                KeyToPath {
                    key: "app.py".into(),
                    path: "../app.py".into(),
                },
            ],
        }));
        let got = fields(&spec);
        assert!(
            got.contains(&"spec.output.labels[\"bad key\"]".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"spec.output.labels[\"ok.key/x\"]".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"spec.source.configMap.items[1].path".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"spec.source.configMap.items[2].path".to_string()),
            "{got:?}"
        );
        assert!(
            !got.contains(&"spec.source.configMap.items[0].path".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn crd_cel_rules_agree_on_what_only_cel_checks() {
        let mut none = valid();
        none.source.git = None;
        assert!(cel_rejects(&none));
        let mut two = valid();
        two.source.archive = Some(Box::new(ArchiveSource {
            url: "https://example.com/a.tgz".into(),
            sha256: None,
        }));
        assert!(cel_rejects(&two));
        let mut oci_and_git = valid();
        oci_and_git.source.oci = Some(Box::new(OciSource {
            image: "registry.example.com/a/source:1".into(),
            secret_ref: None,
        }));
        assert!(cel_rejects(&oci_and_git));
        let mut oci = oci_and_git.clone();
        oci.source.git = None;
        assert!(!cel_rejects(&oci));
        assert_eq!(fields(&oci), Vec::<String>::new());
        for dir in ["../x", "/x", "a/../b", "a//b"] {
            let mut spec = valid();
            spec.source.context_dir = Some(dir.into());
            assert!(cel_rejects(&spec), "CEL accepted contextDir {dir:?}");
        }
        let mut ok = valid();
        ok.source.context_dir = Some("services/api..v2/x".into());
        assert!(!cel_rejects(&ok));
        let mut negative = valid();
        negative.timeout = Some("-1m".parse().unwrap());
        assert!(cel_rejects(&negative));
        let mut label = valid();
        label.output.labels.insert("bad key".into(), "v".into());
        assert!(cel_rejects(&label));
        let poll = |interval: &str, secret: bool, revision: &str| {
            let mut spec = valid();
            let git = spec.source.git.as_mut().unwrap();
            git.poll_interval = Some(interval.parse().unwrap());
            git.revision = Some(revision.into());
            git.secret_ref = secret.then(|| crate::api::SecretReference {
                name: "git-creds".into(),
            });
            (cel_rejects(&spec), fields(&spec).is_empty())
        };
        // Both layers agree: refused by CEL exactly when the controller refuses it.
        assert_eq!(poll("1m", false, "main"), (false, true));
        assert_eq!(poll("59s", false, "main"), (true, false));
        assert_eq!(poll("1m", true, "main"), (true, false));
        assert_eq!(poll("1m", false, &"a".repeat(40)), (true, false));
        assert_eq!(poll("1m", false, &"a".repeat(39)), (false, true));
    }
}
