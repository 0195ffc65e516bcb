//! The build Pod's init step: fetch the source, lay out the build context and write the
//! generated Dockerfile, then report what was built from as JSON in the termination message.
//!
//! The controller hands the step a [`PrepareRequest`] (JSON in the `SOURCEBUILD_PREPARE_REQUEST`
//! environment variable) and reads back a [`PrepareReport`] from the init container's
//! termination message. Both types are the contract between `pod.rs`/`outcome.rs` and this step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{EnvVar, Source};

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
    /// The builder image the Dockerfile's FROM names.
    pub builder_image: String,
}

/// Why prepare failed, in status terms.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareFailure {
    /// A status reason: `SourceFetchFailed` or `InvalidSource`.
    pub reason: String,
    /// What went wrong, naming the file, line or field.
    pub message: String,
}
