//! The build Pod's last step, `sourcebuild publish`: after Kaniko has pushed the image, write its
//! SLSA provenance from what prepare and Kaniko left ([`crate::contract::RESULTS_DIR`],
//! [`crate::contract::DIGEST_DIR`]) and the [`PublishRequest`], sign it when a key is mounted,
//! push it next to the image ([`crate::provenance`]) and report a [`PublishReport`] in the
//! termination message. `sourcebuild publish --check-key` is the same step's first half, run
//! before anything is fetched: it only loads the key, so a bad key fails the build before an
//! unsigned image could be pushed.
//!
//! The push credentials and the key exist only inside the build Pod, which is why this runs
//! there and not in the controller.

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::SourceBuildSpec;
use crate::builder_image::docker_config_credential;
use crate::contract::{
    DIGEST_DIR, DIGEST_FILE, PREPARE_RESULT_FILE, PUBLISH_REQUEST_ENV, PrepareFailure,
    PrepareResult, PublishReport, PublishRequest, PublishResult, REGISTRY_AUTH_DIR,
    REGISTRY_AUTH_FILE, RESULTS_DIR, SIGNING_KEY_DIR, SIGNING_KEY_FILE, TERMINATION_MESSAGE_LIMIT,
};
use crate::provenance::{
    self, KeyError, KeySecretError, ProvenanceInput, PublishError, ReferrersMode, ResolvedSource,
    SigningKey,
};
use crate::reason::FailureReason;

/// The longest the registry may take for the whole publication.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the step reads its inputs; the Pod mounts them at the defaults, tests elsewhere.
#[derive(Clone, Debug)]
pub struct PublishMounts {
    /// prepare's [`PREPARE_RESULT_FILE`].
    pub results_dir: PathBuf,
    /// Kaniko's `<repository>@<digest>` file.
    pub digest_file: PathBuf,
    /// A docker `config.json` with the push credentials; a missing file means anonymous.
    pub docker_config: PathBuf,
    /// The signing key Secret's files.
    pub signing_key_dir: PathBuf,
}

impl Default for PublishMounts {
    fn default() -> Self {
        PublishMounts {
            results_dir: PathBuf::from(RESULTS_DIR),
            digest_file: Path::new(DIGEST_DIR).join(DIGEST_FILE),
            docker_config: Path::new(REGISTRY_AUTH_DIR).join(REGISTRY_AUTH_FILE),
            signing_key_dir: PathBuf::from(SIGNING_KEY_DIR),
        }
    }
}

/// Why the step failed. [`PublishStepError::reason`] maps each to a status reason.
#[derive(Debug, thiserror::Error)]
pub enum PublishStepError {
    /// The request is missing or not JSON of a [`PublishRequest`].
    #[error("the publish request ({PUBLISH_REQUEST_ENV}) is {0}")]
    Request(String),
    /// What prepare or Kaniko should have left is missing or unreadable.
    #[error("{what} ({}) is {problem}", path.display())]
    Input {
        /// What the file is.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The key Secret lacks the key file.
    #[error(
        "signing key Secret {secret:?} has no {SIGNING_KEY_FILE} (as `cosign generate-key-pair k8s://NAMESPACE/NAME` writes it)"
    )]
    MissingKey {
        /// The Secret's name.
        secret: String,
    },
    /// The key cannot sign.
    #[error("signing key Secret {secret:?}: {source}")]
    Key {
        /// The Secret's name.
        secret: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// The docker config with the push credentials is unusable.
    #[error("the push credentials: {0}")]
    Credentials(String),
    /// The statement could not be written.
    #[error("writing the provenance statement: {0}")]
    Statement(String),
    /// The registry did not take the provenance or signature.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Writing the termination message failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl PublishStepError {
    /// The status reason: the one place the step's errors map to reasons.
    pub fn reason(&self) -> FailureReason {
        match self {
            PublishStepError::MissingKey { .. } | PublishStepError::Key { .. } => {
                FailureReason::SigningKeyInvalid
            }
            _ => FailureReason::ProvenancePushFailed,
        }
    }
}

/// `sourcebuild publish --check-key`: load the key the request names; report only a failure.
pub fn check_key(mounts: &PublishMounts, termination_log: &Path) -> Result<(), PublishStepError> {
    let outcome = read_request().and_then(|request| {
        load_key(&request, &mounts.signing_key_dir).map(|key| {
            if let Some(key) = key {
                tracing::info!(key_id = %key.key_id(), "the signing key loads");
            }
            PublishResult::default()
        })
    });
    finish(outcome, termination_log)
}

/// `sourcebuild publish`: publish the provenance of the image Kaniko pushed.
pub fn run(mounts: &PublishMounts, termination_log: &Path) -> Result<(), PublishStepError> {
    let outcome = read_request().and_then(|request| publish(&request, mounts));
    finish(outcome, termination_log)
}

fn finish(
    outcome: Result<PublishResult, PublishStepError>,
    termination_log: &Path,
) -> Result<(), PublishStepError> {
    let report = match &outcome {
        Ok(result) => PublishReport::Published(result.clone()),
        Err(error) => {
            tracing::error!(reason = error.reason().as_str(), %error, "publish failed");
            PublishReport::Failed(PrepareFailure {
                reason: error.reason(),
                message: error.to_string(),
            })
        }
    };
    let json = report_json(&report);
    std::fs::write(termination_log, json).map_err(|source| PublishStepError::Write {
        path: termination_log.to_path_buf(),
        source,
    })?;
    outcome.map(|_| ())
}

/// The report as JSON within the termination message's limit: a failure's message is cut.
fn report_json(report: &PublishReport) -> String {
    let json = serde_json::to_string(report).expect("the report always serializes");
    match report {
        PublishReport::Failed(failure) if json.len() > TERMINATION_MESSAGE_LIMIT => {
            let prepare = crate::contract::PrepareReport::Failed(failure.clone());
            let cut = crate::contract::report_json(&prepare, TERMINATION_MESSAGE_LIMIT - 16);
            let crate::contract::PrepareReport::Failed(cut) =
                serde_json::from_str(&cut).expect("report_json writes a report")
            else {
                unreachable!("a failure stays a failure");
            };
            serde_json::to_string(&PublishReport::Failed(cut)).expect("serializes")
        }
        _ => json,
    }
}

fn read_request() -> Result<PublishRequest, PublishStepError> {
    let raw = std::env::var(PUBLISH_REQUEST_ENV)
        .map_err(|_| PublishStepError::Request("not set".into()))?;
    serde_json::from_str(&raw).map_err(|e| PublishStepError::Request(format!("invalid: {e}")))
}

/// The key the request names, loaded from the mounted Secret; `None` when unsigned.
fn load_key(request: &PublishRequest, dir: &Path) -> Result<Option<SigningKey>, PublishStepError> {
    let Some(secret) = &request.signing_key_secret else {
        return Ok(None);
    };
    provenance::load_key_secret(dir)
        .map(Some)
        .map_err(|error| match error {
            KeySecretError::MissingKey { .. } => PublishStepError::MissingKey {
                secret: secret.clone(),
            },
            KeySecretError::Read { path, error } => PublishStepError::Input {
                what: "the signing key Secret",
                path,
                problem: format!("unreadable: {error}"),
            },
            KeySecretError::Key(source) => PublishStepError::Key {
                secret: secret.clone(),
                source,
            },
        })
}

fn publish(
    request: &PublishRequest,
    mounts: &PublishMounts,
) -> Result<PublishResult, PublishStepError> {
    let key = load_key(request, &mounts.signing_key_dir)?;
    let prepared = read_prepared(&mounts.results_dir)?;
    let digest = read_digest(&mounts.digest_file)?;
    let finished = Timestamp::now().to_string();
    let input = provenance_input(request, &prepared, &digest, &finished)
        .map_err(PublishStepError::Statement)?;
    let statement = provenance::statement_bytes(&input)
        .map_err(|e| PublishStepError::Statement(e.to_string()))?;
    let credential = credential(&mounts.docker_config, &request.output_image)?;
    let publish_request = provenance::PublishRequest {
        image: request.output_image.clone(),
        digest: digest.clone(),
        statement,
        key,
        credential,
        insecure_registries: request.insecure_registries.clone(),
        created: finished,
        timeout: PUBLISH_TIMEOUT,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PublishStepError::Credentials(format!("starting the runtime: {e}")))?;
    let published = runtime.block_on(provenance::publish(&publish_request))?;
    tracing::info!(
        image = %request.output_image,
        %digest,
        attestation = %published.attestation_digest,
        signed = published.signed,
        "published the provenance"
    );
    Ok(PublishResult {
        subject: digest,
        attestation: published.attestation_digest,
        signature: published.signature_digest,
        referrers: Some(referrers_name(published.referrers).to_string()),
    })
}

/// The status spelling of how the referrer is linked.
pub fn referrers_name(mode: ReferrersMode) -> &'static str {
    match mode {
        ReferrersMode::Api => "ReferrersAPI",
        ReferrersMode::TagSchema => "TagSchema",
    }
}

fn read_prepared(dir: &Path) -> Result<PrepareResult, PublishStepError> {
    let path = dir.join(PREPARE_RESULT_FILE);
    let bytes = std::fs::read(&path).map_err(|e| PublishStepError::Input {
        what: "prepare's result",
        path: path.clone(),
        problem: format!("unreadable: {e}"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| PublishStepError::Input {
        what: "prepare's result",
        path,
        problem: format!("not JSON of a result: {e}"),
    })
}

/// The digest of Kaniko's `<repository>@sha256:<hex>` line.
fn read_digest(path: &Path) -> Result<String, PublishStepError> {
    let text = std::fs::read_to_string(path).map_err(|e| PublishStepError::Input {
        what: "Kaniko's image digest file",
        path: path.to_path_buf(),
        problem: format!("unreadable: {e}"),
    })?;
    parse_digest_file(&text).ok_or_else(|| PublishStepError::Input {
        what: "Kaniko's image digest file",
        path: path.to_path_buf(),
        problem: format!(
            "not one `<repository>@sha256:<hex>` line: {:?}",
            text.trim()
        ),
    })
}

/// `sha256:<64 lowercase hex>` from Kaniko's one-line `<repository>@<digest>` file.
pub fn parse_digest_file(text: &str) -> Option<String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let line = lines.next()?.trim();
    if lines.next().is_some() {
        return None;
    }
    let (_, digest) = line.rsplit_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| digest.to_string())
}

fn credential(
    docker_config: &Path,
    image: &str,
) -> Result<Option<crate::builder_image::Credential>, PublishStepError> {
    let reference = crate::builder_image::parse_reference(image)
        .map_err(|e| PublishStepError::Credentials(e.to_string()))?;
    docker_config_credential(docker_config, reference.resolve_registry()).map_err(|reason| {
        PublishStepError::Credentials(format!("{}: {reason}", docker_config.display()))
    })
}

/// What the statement says, from the request, prepare's result and Kaniko's digest. Pure.
pub fn provenance_input(
    request: &PublishRequest,
    prepared: &PrepareResult,
    digest: &str,
    finished: &str,
) -> Result<ProvenanceInput, String> {
    let spec: SourceBuildSpec = serde_json::from_value(request.spec.clone())
        .map_err(|e| format!("the request's spec is not a SourceBuild spec: {e}"))?;
    let revision = || {
        prepared
            .revision
            .clone()
            .ok_or_else(|| "prepare reported no source revision".to_string())
    };
    let source = &spec.source;
    let resolved = if let Some(git) = &source.git {
        ResolvedSource::Git {
            url: git.url.clone(),
            commit: revision()?,
        }
    } else if let Some(archive) = &source.archive {
        ResolvedSource::Archive {
            url: archive.url.clone(),
            sha256: revision()?,
        }
    } else if let Some(config_map) = &source.config_map {
        ResolvedSource::ConfigMap {
            namespace: request.namespace.clone(),
            name: config_map.name.clone(),
            content_sha256: prepared.revision.clone(),
            resource_version: None,
        }
    } else if let Some(oci) = &source.oci {
        ResolvedSource::Oci {
            reference: oci.image.clone(),
            digest: revision()?,
        }
    } else {
        return Err("the request's spec names no source".into());
    };
    let (builder_image, builder_digest) =
        prepared.builder_image.rsplit_once('@').ok_or_else(|| {
            format!(
                "prepare's builder image {:?} is not pinned by digest",
                prepared.builder_image
            )
        })?;
    Ok(ProvenanceInput {
        image: crate::pod::image_repository(&request.output_image).to_string(),
        digest: digest.to_string(),
        external_parameters: request.spec.clone(),
        source: resolved,
        builder_image: builder_image.to_string(),
        builder_digest: builder_digest.to_string(),
        operator_version: request.operator_version.clone(),
        kaniko_image: request.kaniko_image.clone(),
        dockerfile_sha256: prepared.dockerfile_sha256.clone(),
        builder_id: request.builder_id.clone(),
        invocation_id: format!(
            "{}/{}/{}/generation/{}/build/{}",
            request.namespace, request.name, request.uid, request.generation, request.build
        ),
        started_on: prepared
            .started
            .clone()
            .unwrap_or_else(|| finished.to_string()),
        finished_on: finished.to_string(),
    })
}
