//! The build Pod's init step: fetch the source, lay out the build context and write the
//! generated Dockerfile, then report what was built from as JSON in the termination message.
//!
//! The controller hands the step a [`PrepareRequest`] (JSON in the [`REQUEST_ENV`] environment
//! variable) and reads back a [`PrepareReport`] from the init container's termination message;
//! both are defined in [`crate::contract`].

pub mod scripts_download;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::builder_image::{BuilderImage, BuilderImageError, FetchOptions, fetch_builder_image};
use crate::contract::{
    CONFIGMAP_DIR, GIT_SECRET_DIR, OCI_AUTH_DIR, PREPARE_RESULT_FILE, PrepareFailure,
    PrepareReport, PrepareRequest, PrepareResult, REGISTRY_AUTH_DIR, REGISTRY_AUTH_FILE,
    REQUEST_ENV, RESULTS_DIR, TERMINATION_MESSAGE_LIMIT, report_json,
};
use crate::reason::FailureReason;
use crate::s2i::context::lay_out_context;
use crate::s2i::dockerfile::{DockerfileSpec, render_dockerfile};
use crate::s2i::scripts::{self, Script, ScriptsUrl};
use crate::source::{FetchedSource, SourceMounts};
use scripts_download::{DownloadError, MAX_SCRIPT_BYTES, download_scripts};

/// Image label: the builder image the build used.
pub const LABEL_BUILD_IMAGE: &str = "io.openshift.s2i.build.image";
/// Image label: where the source came from.
pub const LABEL_SOURCE_LOCATION: &str = "io.openshift.s2i.build.source-location";
/// Image label: the git commit built.
pub const LABEL_COMMIT_ID: &str = "io.openshift.s2i.build.commit.id";
/// Image label (OCI): where an `oci` source's content was made from, from its annotation.
pub const LABEL_OCI_SOURCE: &str = crate::source::oci::ANNOTATION_SOURCE;
/// Image label (OCI): which revision of it, from its annotation.
pub const LABEL_OCI_REVISION: &str = crate::source::oci::ANNOTATION_REVISION;
/// Image label: the output image name.
pub const LABEL_DISPLAY_NAME: &str = "io.k8s.display-name";

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
    /// Scripts, destination or user are unusable.
    #[error(transparent)]
    Scripts(#[from] crate::s2i::scripts::ScriptsError),
    /// Downloading the scripts from `spec.builder.scriptsUrl` failed.
    #[error(transparent)]
    ScriptsDownload(#[from] DownloadError),
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
    pub fn reason(&self) -> FailureReason {
        match self {
            PrepareError::Fetch(error) => error.reason(),
            PrepareError::BuilderImage(_) => FailureReason::BuilderImagePullFailed,
            PrepareError::ScriptsDownload(DownloadError::Fetch { .. }) => {
                FailureReason::SourceFetchFailed
            }
            PrepareError::MissingRequest
            | PrepareError::InvalidRequest(_)
            | PrepareError::Context(_)
            | PrepareError::Scripts(_)
            | PrepareError::ScriptsDownload(DownloadError::Write { .. })
            | PrepareError::Dockerfile(_)
            | PrepareError::Write { .. } => FailureReason::InvalidSource,
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
    if let Some(origin) = &source.origin {
        for (key, value) in [
            (LABEL_OCI_SOURCE, &origin.source),
            (LABEL_OCI_REVISION, &origin.revision),
        ] {
            if let Some(value) = value {
                labels.insert(key.to_string(), value.clone());
            }
        }
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
        let downloaded = download_scripts(
            url,
            &workspace.join("upload").join("scripts"),
            MAX_SCRIPT_BYTES,
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
        origin: source.origin.clone(),
        dockerfile_sha256,
        builder_image: builder.reference.clone(),
        started: None,
    })
}

/// The paths `sourcebuild prepare` reads its inputs from; the build Pod mounts them, tests
/// point them elsewhere.
#[derive(Clone, Debug)]
pub struct PrepareMounts {
    /// The source Secret and ConfigMap.
    pub source: SourceMounts,
    /// A docker `config.json` for the builder image's registry; a missing file means anonymous.
    /// Also the `oci` source's, unless that source has a Secret of its own.
    pub docker_config: PathBuf,
    /// The `oci` source's own docker `config.json` (`spec.source.oci.secretRef`), when mounted.
    pub oci_docker_config: Option<PathBuf>,
    /// Where the result is also left for the publish step ([`PREPARE_RESULT_FILE`]), when
    /// mounted.
    pub results_dir: Option<PathBuf>,
}

impl Default for PrepareMounts {
    fn default() -> Self {
        PrepareMounts {
            source: SourceMounts {
                git_secret_dir: Some(PathBuf::from(GIT_SECRET_DIR)).filter(|dir| dir.is_dir()),
                configmap_dir: PathBuf::from(CONFIGMAP_DIR),
                ..SourceMounts::default()
            },
            docker_config: Path::new(REGISTRY_AUTH_DIR).join(REGISTRY_AUTH_FILE),
            oci_docker_config: Some(Path::new(OCI_AUTH_DIR).join(REGISTRY_AUTH_FILE))
                .filter(|file| file.is_file()),
            results_dir: Some(PathBuf::from(RESULTS_DIR)).filter(|dir| dir.is_dir()),
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
    let started = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut outcome =
        read_request().and_then(|req| prepare_build(&req, mounts, workspace, scratch));
    if let Ok(result) = &mut outcome {
        result.started = Some(started);
        if let Some(dir) = &mounts.results_dir {
            let path = dir.join(PREPARE_RESULT_FILE);
            let json = serde_json::to_vec(result).expect("the result always serializes");
            if let Err(source) = std::fs::write(&path, json) {
                outcome = Err(PrepareError::Write { path, source });
            }
        }
    }
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
    let source_mounts = SourceMounts {
        oci_docker_config: Some(
            mounts
                .oci_docker_config
                .clone()
                .unwrap_or_else(|| mounts.docker_config.clone()),
        ),
        insecure_registries: req.insecure_registries.clone(),
        ..mounts.source.clone()
    };
    let source = crate::source::fetch(&req.source, &source_mounts, scratch)?;
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
            tracing::error!(reason = error.reason().as_str(), %error, "prepare failed");
            PrepareReport::Failed(PrepareFailure {
                reason: error.reason(),
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
            origin: None,
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
    fn an_artifacts_origin_becomes_oci_labels_and_user_labels_win() {
        let mut source = fetched(Some(&format!("sha256:{}", "a".repeat(64))));
        source.location = "oci://registry.example.com/a/source:1".into();
        source.origin = Some(crate::api::SourceOrigin {
            source: Some("https://example.com/a".into()),
            revision: Some("main@sha1:0123".into()),
        });
        let mut req = request();
        let labels = build_labels(&source, &req);
        assert_eq!(labels[LABEL_OCI_SOURCE], "https://example.com/a");
        assert_eq!(labels[LABEL_OCI_REVISION], "main@sha1:0123");
        assert_eq!(
            labels[LABEL_SOURCE_LOCATION],
            "oci://registry.example.com/a/source:1"
        );
        req.labels
            .insert(LABEL_OCI_REVISION.to_string(), "mine".to_string());
        assert_eq!(build_labels(&source, &req)[LABEL_OCI_REVISION], "mine");
        source.origin = Some(crate::api::SourceOrigin {
            source: None,
            revision: Some("v1".into()),
        });
        assert!(!build_labels(&source, &request()).contains_key(LABEL_OCI_SOURCE));
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
            FailureReason::InvalidSource
        );
        let missing = crate::source::configmap::ConfigMapError::MissingKey {
            name: "app".into(),
            key: "app.py".into(),
            path: "app.py".into(),
            mount: CONFIGMAP_DIR.into(),
        };
        assert_eq!(
            PrepareError::Fetch(missing.into()).reason(),
            FailureReason::SourceFetchFailed
        );
        let env = crate::s2i::context::ContextError::Environment(EnvironmentError::MissingEquals {
            file: ".s2i/environment".into(),
            line: 2,
        });
        let error = PrepareError::Context(env);
        assert_eq!(error.reason(), FailureReason::InvalidSource);
        assert_eq!(
            error.to_string(),
            ".s2i/environment:2: expected NAME=VALUE, found no '='"
        );
        let download = DownloadError::Fetch {
            url: "http://x/run".into(),
            reason: "404".into(),
        };
        assert_eq!(
            PrepareError::ScriptsDownload(download).reason(),
            FailureReason::SourceFetchFailed
        );
        let pull = PrepareError::BuilderImage(BuilderImageError::Registry {
            image: "127.0.0.1:5000/s2i/none:1".into(),
            registry: "127.0.0.1:5000".into(),
            answer: "MANIFEST_UNKNOWN".into(),
        });
        assert_eq!(pull.reason(), FailureReason::BuilderImagePullFailed);
        assert_eq!(
            pull.to_string(),
            "pulling builder image 127.0.0.1:5000/s2i/none:1 from 127.0.0.1:5000: MANIFEST_UNKNOWN"
        );
        assert_eq!(
            PrepareError::MissingRequest.to_string(),
            format!("environment variable {REQUEST_ENV} is not set")
        );
    }
}
