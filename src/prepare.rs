//! The build Pod's init step: fetch the source, lay out the build context and write the
//! generated Dockerfile, then report what was built from as JSON in the termination message.
//!
//! The controller hands the step a [`PrepareRequest`] (JSON in the `SOURCEBUILD_PREPARE_REQUEST`
//! environment variable) and reads back a [`PrepareReport`] from the init container's
//! termination message. Both types are the contract between `pod.rs`/`outcome.rs` and this step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{EnvVar, Source};
use crate::builder_image::{BuilderImage, BuilderImageError, FetchOptions, fetch_builder_image};
use crate::s2i::context::lay_out_context;
use crate::s2i::dockerfile::{DockerfileSpec, render_dockerfile};
use crate::s2i::scripts::{self, Script, ScriptsUrl};
use crate::source::{FetchedSource, SourceMounts};

/// Environment variable that carries the [`PrepareRequest`] JSON into the init container.
pub const REQUEST_ENV: &str = "SOURCEBUILD_PREPARE_REQUEST";
/// The shared `emptyDir`: prepare writes `Dockerfile` and `upload/` here, Kaniko reads it.
pub const WORKSPACE_DIR: &str = "/workspace";
/// Scratch space for the fetched source, outside the build context.
pub const SCRATCH_DIR: &str = "/scratch";
/// Where a `kubernetes.io/basic-auth` git Secret is mounted (keys `username`, `password`).
pub const GIT_SECRET_DIR: &str = "/var/run/secrets/sourcebuild/git";
/// Where the ConfigMap source is mounted (read-only, laid out by the kubelet).
pub const CONFIGMAP_DIR: &str = "/var/run/sourcebuild/configmap";
/// Where the push Secret's `.dockerconfigjson` is mounted as `config.json`, so prepare can read
/// the builder image from a private registry with the same credentials Kaniko gets.
pub const REGISTRY_AUTH_DIR: &str = "/var/run/secrets/sourcebuild/registry";
/// The docker config file name inside [`REGISTRY_AUTH_DIR`].
pub const REGISTRY_AUTH_FILE: &str = "config.json";
/// Largest termination message the kubelet keeps (bytes).
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Everything `prepare` needs, derived by the controller from the SourceBuild spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareRequest {
    /// The source: exactly one of git, configMap, archive, plus contextDir.
    pub source: Source,
    /// Builder image reference (spec or the operator default), as the user wrote it.
    pub builder_image: String,
    /// `spec.builder.scriptsUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts_url: Option<String>,
    /// `spec.builder.assembleUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assemble_user: Option<String>,
    /// `spec.env`, applied after `.s2i/environment`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// `spec.output.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `spec.output.image`, recorded in the image's labels.
    pub output_image: String,
    /// Registries (`host[:port]`) reached over plain HTTP (the operator's `--insecure-registry`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
}

/// What prepare reports in its termination message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum PrepareReport {
    /// The build context is ready.
    Prepared(PrepareResult),
    /// The step failed; the build must not go on.
    Failed(PrepareFailure),
}

/// Provenance of a prepared build context.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareResult {
    /// Resolved git commit, or `sha256:<hex>` of the archive; none for a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `sha256:<hex>` of the generated Dockerfile bytes.
    pub dockerfile_sha256: String,
    /// The builder image the Dockerfile's FROM names: `repo@sha256:...`, pinned to the manifest
    /// whose config prepare read.
    pub builder_image: String,
}

/// Why prepare failed, in status terms.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareFailure {
    /// A status reason: `SourceFetchFailed`, `InvalidSource` or `BuilderImagePullFailed`.
    pub reason: String,
    /// What went wrong, naming the file, line or field.
    pub message: String,
}

/// Image label: the builder image the build used.
pub const LABEL_BUILD_IMAGE: &str = "io.openshift.s2i.build.image";
/// Image label: where the source came from.
pub const LABEL_SOURCE_LOCATION: &str = "io.openshift.s2i.build.source-location";
/// Image label: the git commit built.
pub const LABEL_COMMIT_ID: &str = "io.openshift.s2i.build.commit.id";
/// Image label: the output image name.
pub const LABEL_DISPLAY_NAME: &str = "io.k8s.display-name";
/// Status reason for a source that could not be fetched.
pub const REASON_SOURCE_FETCH_FAILED: &str = "SourceFetchFailed";
/// Status reason for a source (or request) the build cannot use.
pub const REASON_INVALID_SOURCE: &str = "InvalidSource";
/// Status reason for a builder image whose manifest or config could not be read.
pub const REASON_BUILDER_IMAGE_PULL_FAILED: &str = "BuilderImagePullFailed";

/// Why prepare failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The request variable is not set.
    #[error("environment variable {REQUEST_ENV} is not set")]
    MissingRequest,
    /// The request variable does not hold a `PrepareRequest`.
    #[error("environment variable {REQUEST_ENV} is not a valid prepare request: {0}")]
    InvalidRequest(#[source] serde_json::Error),
    /// The source could not be fetched.
    #[error("fetching the source: {0}")]
    Fetch(#[from] crate::source::FetchError),
    /// The builder image's manifest or config could not be read from its registry.
    #[error(transparent)]
    BuilderImage(#[from] BuilderImageError),
    /// The source tree cannot be laid out.
    #[error(transparent)]
    Context(#[from] crate::s2i::context::ContextError),
    /// Scripts, destination or user are unusable, or the script download failed.
    #[error(transparent)]
    Scripts(#[from] crate::s2i::scripts::ScriptsError),
    /// A value cannot be written into the Dockerfile.
    #[error(transparent)]
    Dockerfile(#[from] crate::s2i::dockerfile::DockerfileError),
    /// Writing the Dockerfile or the termination log failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PrepareError {
    /// The status reason for this failure: the one place errors map to reasons.
    pub fn reason(&self) -> &'static str {
        use crate::s2i::scripts::ScriptsError;
        match self {
            PrepareError::Fetch(error) => error.reason(),
            PrepareError::BuilderImage(_) => REASON_BUILDER_IMAGE_PULL_FAILED,
            PrepareError::Scripts(ScriptsError::Download { .. }) => REASON_SOURCE_FETCH_FAILED,
            PrepareError::MissingRequest
            | PrepareError::InvalidRequest(_)
            | PrepareError::Context(_)
            | PrepareError::Scripts(_)
            | PrepareError::Dockerfile(_)
            | PrepareError::Write { .. } => REASON_INVALID_SOURCE,
        }
    }
}

/// Whether `revision` is a git commit id (SHA-1 or SHA-256 object name), not an archive digest.
fn is_git_commit(revision: &str) -> bool {
    matches!(revision.len(), 40 | 64)
        && revision
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The image labels: provenance first, then the user's labels, which win.
pub fn build_labels(source: &FetchedSource, req: &PrepareRequest) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_BUILD_IMAGE.to_string(), req.builder_image.clone()),
        (LABEL_SOURCE_LOCATION.to_string(), source.location.clone()),
        (LABEL_DISPLAY_NAME.to_string(), req.output_image.clone()),
    ]);
    if let Some(revision) = source.revision.as_deref().filter(|r| is_git_commit(r)) {
        labels.insert(LABEL_COMMIT_ID.to_string(), revision.to_string());
    }
    labels.extend(req.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// Lays out the build context for `source` in `workspace` and writes `<workspace>/Dockerfile`
/// `FROM builder.reference`, with scripts, destination and user resolved from the spec first,
/// then `builder.metadata`, as s2i does.
pub fn prepare_workspace(
    source: &FetchedSource,
    req: &PrepareRequest,
    builder: &BuilderImage,
    workspace: &Path,
) -> Result<PrepareResult, PrepareError> {
    let metadata = &builder.metadata;
    let context = lay_out_context(&source.root, req.source.context_dir.as_deref(), workspace)?;
    let spec_url = req
        .scripts_url
        .as_deref()
        .map(|url| scripts::parse_scripts_url("spec.builder.scriptsUrl", url))
        .transpose()?;
    let mut uploaded = context.hooks.clone();
    if let Some(ScriptsUrl::Http(url)) = &spec_url {
        let downloaded = scripts::download_scripts(
            url,
            &workspace.join("upload").join("scripts"),
            scripts::MAX_SCRIPT_BYTES,
        )?;
        uploaded.extend(downloaded);
    }
    let destination = scripts::resolve_destination(metadata)?;
    let resolve = |script| {
        scripts::resolve_script(
            script,
            spec_url.as_ref(),
            &context.hooks,
            metadata,
            &destination,
        )
    };
    let assemble = resolve(Script::Assemble)?;
    let run = resolve(Script::Run)?;
    let user = scripts::resolve_assemble_user(req.assemble_user.as_deref(), metadata)?;

    let mut env = context.environment.clone();
    env.extend(req.env.iter().map(|e| (e.name.clone(), e.value.clone())));
    let spec = DockerfileSpec {
        builder_image: builder.reference.clone(),
        labels: build_labels(source, req),
        env,
        user,
        builder_user: metadata.user.clone(),
        destination,
        copy_scripts: !uploaded.is_empty(),
        assemble: assemble.path,
        run: run.path,
    };
    let dockerfile = render_dockerfile(&spec)?;
    let path = workspace.join("Dockerfile");
    std::fs::write(&path, &dockerfile).map_err(|source| PrepareError::Write {
        path: path.clone(),
        source,
    })?;
    let dockerfile_sha256 = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(dockerfile.as_bytes()))
    );
    tracing::info!(
        assemble = ?assemble.origin,
        run = ?run.origin,
        %dockerfile_sha256,
        "wrote the Dockerfile"
    );
    Ok(PrepareResult {
        revision: source.revision.clone(),
        dockerfile_sha256,
        builder_image: builder.reference.clone(),
    })
}

/// The paths `sourcebuild prepare` reads its inputs from; the build Pod mounts them, tests
/// point them elsewhere.
#[derive(Clone, Debug)]
pub struct PrepareMounts {
    /// The source Secret and ConfigMap.
    pub source: SourceMounts,
    /// A docker `config.json` for the builder image's registry; a missing file means anonymous.
    pub docker_config: PathBuf,
}

impl Default for PrepareMounts {
    fn default() -> Self {
        PrepareMounts {
            source: SourceMounts {
                git_secret_dir: Some(PathBuf::from(GIT_SECRET_DIR)).filter(|dir| dir.is_dir()),
                configmap_dir: PathBuf::from(CONFIGMAP_DIR),
            },
            docker_config: Path::new(REGISTRY_AUTH_DIR).join(REGISTRY_AUTH_FILE),
        }
    }
}

/// What `sourcebuild prepare` does: read the request from [`REQUEST_ENV`], read the builder
/// image's config from its registry, fetch the source into `scratch`, prepare `workspace`, and
/// write a [`PrepareReport`] to `termination_log` whatever the outcome. `mounts` are where the
/// Pod mounts its inputs ([`PrepareMounts::default`]); other paths serve runs outside a Pod
/// (the tests' pod runner).
pub fn run(
    workspace: &Path,
    scratch: &Path,
    termination_log: &Path,
    mounts: &PrepareMounts,
) -> Result<(), PrepareError> {
    let outcome = read_request().and_then(|req| prepare_build(&req, mounts, workspace, scratch));
    write_report(&outcome, termination_log)?;
    outcome.map(|_| ())
}

/// Runs one prepare for `req`: the builder image first (a cheap look-up that fails fast, before
/// a possibly large source fetch), then the source, then the build context.
pub fn prepare_build(
    req: &PrepareRequest,
    mounts: &PrepareMounts,
    workspace: &Path,
    scratch: &Path,
) -> Result<PrepareResult, PrepareError> {
    let options = FetchOptions {
        insecure_registries: req.insecure_registries.clone(),
        docker_config: Some(mounts.docker_config.clone()),
        ..FetchOptions::default()
    };
    let builder = fetch_builder_image(&req.builder_image, &options)?;
    let source = crate::source::fetch(&req.source, &mounts.source, scratch)?;
    prepare_workspace(&source, req, &builder, workspace)
}

/// Writes the [`PrepareReport`] for `outcome` to `termination_log`.
pub fn write_report(
    outcome: &Result<PrepareResult, PrepareError>,
    termination_log: &Path,
) -> Result<(), PrepareError> {
    let report = match outcome {
        Ok(result) => PrepareReport::Prepared(result.clone()),
        Err(error) => {
            tracing::error!(reason = error.reason(), %error, "prepare failed");
            PrepareReport::Failed(PrepareFailure {
                reason: error.reason().to_string(),
                message: error.to_string(),
            })
        }
    };
    let json = report_json(&report, TERMINATION_MESSAGE_LIMIT);
    std::fs::write(termination_log, json).map_err(|source| PrepareError::Write {
        path: termination_log.to_path_buf(),
        source,
    })
}

fn read_request() -> Result<PrepareRequest, PrepareError> {
    let raw = std::env::var(REQUEST_ENV).map_err(|_| PrepareError::MissingRequest)?;
    serde_json::from_str(&raw).map_err(PrepareError::InvalidRequest)
}

/// The report as JSON of at most `limit` bytes: a failure's message is cut (at a character
/// boundary, marked with `...`) until it fits, since the kubelet truncates the termination
/// message and a truncated JSON document cannot be parsed.
pub fn report_json(report: &PrepareReport, limit: usize) -> String {
    let json = serde_json::to_string(report).expect("the report always serializes");
    let PrepareReport::Failed(failure) = report else {
        return json;
    };
    if json.len() <= limit {
        return json;
    }
    let mut keep = failure.message.len();
    loop {
        let excess = serde_json::to_string(&PrepareReport::Failed(PrepareFailure {
            reason: failure.reason.clone(),
            message: truncated(&failure.message, keep),
        }))
        .expect("the report always serializes");
        if excess.len() <= limit || keep == 0 {
            return excess;
        }
        // Escaping can make a byte of message cost up to six bytes of JSON, so shrink in
        // proportion to the overshoot rather than by it; a few rounds converge.
        keep = (keep * limit / excess.len()).min(keep - 1);
    }
}

fn truncated(message: &str, keep: usize) -> String {
    let mut end = keep.min(message.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PrepareRequest {
        serde_json::from_value(serde_json::json!({
            "source": {"git": {"url": "https://example.com/a.git"}},
            "builderImage": "quay.io/sclorg/python-312-c9s:c9s",
            "outputImage": "registry.example.com/a:1",
            "labels": {"io.k8s.display-name": "mine", "team": "x"}
        }))
        .unwrap()
    }

    fn fetched(revision: Option<&str>) -> FetchedSource {
        FetchedSource {
            root: std::path::PathBuf::from("/nonexistent"),
            revision: revision.map(str::to_string),
            location: "https://example.com/a.git".into(),
        }
    }

    #[test]
    fn labels_record_provenance_and_user_labels_win() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let labels = build_labels(&fetched(Some(sha)), &request());
        assert_eq!(
            labels[LABEL_BUILD_IMAGE],
            "quay.io/sclorg/python-312-c9s:c9s"
        );
        assert_eq!(labels[LABEL_SOURCE_LOCATION], "https://example.com/a.git");
        assert_eq!(labels[LABEL_COMMIT_ID], sha);
        assert_eq!(labels[LABEL_DISPLAY_NAME], "mine");
        assert_eq!(labels["team"], "x");
        assert_eq!(labels.len(), 5);
    }

    #[test]
    fn commit_label_only_for_git_commits() {
        let archive = format!("sha256:{}", "a".repeat(64));
        assert!(!build_labels(&fetched(Some(&archive)), &request()).contains_key(LABEL_COMMIT_ID));
        assert!(!build_labels(&fetched(None), &request()).contains_key(LABEL_COMMIT_ID));
        assert!(!build_labels(&fetched(Some("main")), &request()).contains_key(LABEL_COMMIT_ID));
        assert!(is_git_commit(&"b".repeat(64)));
        assert!(!is_git_commit(&"B".repeat(40)));
    }

    #[test]
    fn reasons_map_fetch_and_tree_problems() {
        use crate::s2i::environment::EnvironmentError;
        assert_eq!(
            PrepareError::Fetch(crate::source::FetchError::InvalidSource("none set".into()))
                .reason(),
            REASON_INVALID_SOURCE
        );
        let missing = crate::source::configmap::ConfigMapError::MissingKey {
            name: "app".into(),
            key: "app.py".into(),
            path: "app.py".into(),
            mount: CONFIGMAP_DIR.into(),
        };
        assert_eq!(
            PrepareError::Fetch(missing.into()).reason(),
            REASON_SOURCE_FETCH_FAILED
        );
        let env = crate::s2i::context::ContextError::Environment(EnvironmentError::MissingEquals {
            file: ".s2i/environment".into(),
            line: 2,
        });
        let error = PrepareError::Context(env);
        assert_eq!(error.reason(), REASON_INVALID_SOURCE);
        assert_eq!(
            error.to_string(),
            ".s2i/environment:2: expected NAME=VALUE, found no '='"
        );
        let download = crate::s2i::scripts::ScriptsError::Download {
            url: "http://x/run".into(),
            reason: "404".into(),
        };
        assert_eq!(
            PrepareError::Scripts(download).reason(),
            REASON_SOURCE_FETCH_FAILED
        );
        let pull = PrepareError::BuilderImage(BuilderImageError::Registry {
            image: "127.0.0.1:5000/s2i/none:1".into(),
            registry: "127.0.0.1:5000".into(),
            answer: "MANIFEST_UNKNOWN".into(),
        });
        assert_eq!(pull.reason(), REASON_BUILDER_IMAGE_PULL_FAILED);
        assert_eq!(
            pull.to_string(),
            "pulling builder image 127.0.0.1:5000/s2i/none:1 from 127.0.0.1:5000: MANIFEST_UNKNOWN"
        );
        assert_eq!(
            PrepareError::MissingRequest.to_string(),
            format!("environment variable {REQUEST_ENV} is not set")
        );
    }

    #[test]
    fn long_failure_messages_are_cut_to_fit() {
        for message in ["x".repeat(10_000), "\"\u{1}é".repeat(3_000)] {
            let report = PrepareReport::Failed(PrepareFailure {
                reason: REASON_INVALID_SOURCE.into(),
                message: message.clone(),
            });
            let json = report_json(&report, TERMINATION_MESSAGE_LIMIT);
            assert!(json.len() <= TERMINATION_MESSAGE_LIMIT, "{}", json.len());
            assert!(
                json.len() > TERMINATION_MESSAGE_LIMIT - 16,
                "{}",
                json.len()
            );
            let PrepareReport::Failed(back) = serde_json::from_str(&json).unwrap() else {
                panic!("not a failure: {json}");
            };
            assert!(back.message.ends_with("..."));
            assert!(message.starts_with(back.message.trim_end_matches("...")));
        }
        let short = PrepareReport::Failed(PrepareFailure {
            reason: REASON_INVALID_SOURCE.into(),
            message: "short".into(),
        });
        assert_eq!(
            report_json(&short, TERMINATION_MESSAGE_LIMIT),
            serde_json::to_string(&short).unwrap()
        );
    }
}
